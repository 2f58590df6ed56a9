/* The model registry: every --model value is a network description, shipped (embedded in the binary,
 * models/zoo.h) or read from a file. */
#include <stdlib.h>
#include <string.h>

#include "dptrain/fsutil.h"
#include "dptrain/netdesc.h"
#include "models/zoo.h"

/* a description is a few KiB; anything over 4 MiB is not one */
#define DESC_MAX ((size_t)4 << 20)

const char *dp_model_names(void) { return "mlp cnn resnet20 (or a description FILE.json)"; }

static const char *shipped(const char *name)
{
    for (int i = 0; i < dp_zoo_count; i++)
        if (!strcmp(name, dp_zoo[i].name)) return dp_zoo[i].json;
    return NULL;
}

int dp_netdesc_shipped(const char *model_arg) { return shipped(model_arg) != NULL; }

dp_status dp_netdesc_load(const char *model_arg, char **json_out)
{
    *json_out = NULL;
    const char *z = shipped(model_arg);
    if (z) {
        *json_out = strdup(z);
        return *json_out ? DP_OK : dp_errorf(DP_ERR_NOMEM, "%s: out of memory", model_arg);
    }
    size_t n = strlen(model_arg);
    if (n < 5 || strcmp(model_arg + n - 5, ".json"))
        return dp_errorf(DP_ERR_ARG, "--model: unknown model '%s' (known: %s)", model_arg, dp_model_names());
    return dp_read_text(model_arg, DESC_MAX, json_out);
}

dp_status dp_model_build(const char *name, const dp_model_shape *shape, dp_model **out)
{
    *out = NULL;
    char *json = NULL;
    dp_status rc = dp_netdesc_load(name, &json);
    if (rc == DP_OK) rc = dp_netdesc_build(json, name, shape, out);
    free(json);
    return rc;
}

void dp_model_free(dp_model *m)
{
    if (!m) return;
    if (m->free_impl) m->free_impl(m->impl);
    dp_params_free(&m->params);
    free(m->desc);
    free(m);
}
