/* What every importer shares: opening the dataset writer with its progress
 * stream, counting input bytes, and class names from a text file. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dptrain/fsutil.h"
#include "dptrain/import.h"

enum { NAMES_MAX_BYTES = 16 << 20 };

dp_status dp_import_begin(const dp_import_opts *o, const dp_shard_schema *schema, dp_dataset_writer **w)
{
    *w = NULL;
    if (!o->out_dir || !o->name)
        return dp_errorf(DP_ERR_ARG, "import: no output directory or dataset name");
    dp_status rc = dp_dataset_writer_open(o->out_dir, o->name, schema, o->overwrite, w);
    if (rc == DP_OK)
        dp_dataset_writer_progress(*w, o->progress);
    return rc;
}

void dp_import_count_input(dp_import_stats *st, const char *path)
{
    struct stat sb;
    if (st && stat(path, &sb) == 0)
        st->in_bytes += (uint64_t)sb.st_size;
}

void dp_import_free_names(char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

dp_status dp_import_read_names(const char *path, int classes, char ***out)
{
    *out = NULL;
    char *text = NULL;
    dp_status rc = dp_read_text(path, NAMES_MAX_BYTES, &text);
    if (rc != DP_OK)
        return rc;
    char **names = calloc((size_t)classes, sizeof *names);
    int n = 0, lineno = 0;
    if (!names)
        rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    for (char *line = text, *next; rc == DP_OK && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        lineno++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (n == classes)
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%d: more than %d class names", path, lineno, classes);
        else if (len >= DP_MANIFEST_CLASS_MAX)
            rc = dp_errorf(DP_ERR_FORMAT, "%s:%d: class name of %zu bytes (at most %d)", path, lineno, len,
                           DP_MANIFEST_CLASS_MAX - 1);
        else if (!(names[n++] = strdup(line)))
            rc = dp_errorf(DP_ERR_NOMEM, "%s: out of memory", path);
    }
    if (rc == DP_OK && n < classes)
        rc = dp_errorf(DP_ERR_FORMAT, "%s: %d class names, want %d", path, n, classes);
    free(text);
    if (rc != DP_OK) {
        dp_import_free_names(names, classes);
        return rc;
    }
    *out = names;
    return DP_OK;
}
