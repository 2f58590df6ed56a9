/* ckpt_forge IN OUT EDIT [ARG...]: a checkpoint IN rewritten as OUT with one edit, through the project's own
 * writer, so its checksums are valid and only the checks of what the fields mean can refuse it:
 *   state FIELD VALUE   a field of the driver's state (step, pos, epoch, skipped, skip_run, clean_steps,
 *                       ep_seen, ep_correct, loss_scale)
 *   i64 TAG VALUE       the first 8 bytes of section TAG as an int64 (a task's counters: train's optimizer t)
 *   halve TAG           section TAG cut to half its bytes
 *   dup TAG             section TAG written a second time, at the end
 *   copy TAG NEW        section TAG written a second time as tag NEW (a section no run reads)
 *   drop-line KEY       the config section without its KEY=... line (a checkpoint older than that key)
 * Used by tests/train/ckpt_checks.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/task.h"

static int usage(void)
{
    fprintf(stderr, "usage: ckpt_forge IN OUT state FIELD VALUE | i64 TAG VALUE | halve TAG | dup TAG | "
                    "copy TAG NEW | drop-line KEY\n");
    return 2;
}

static int set_state(dp_drive_state *st, const char *field, const char *value)
{
    long long v = strtoll(value, NULL, 0);
    if (!strcmp(field, "step")) st->step = v;
    else if (!strcmp(field, "pos")) st->pos = v;
    else if (!strcmp(field, "epoch")) st->epoch = (uint32_t)v;
    else if (!strcmp(field, "skipped")) st->skipped = v;
    else if (!strcmp(field, "skip_run")) st->skip_run = v;
    else if (!strcmp(field, "clean_steps")) st->clean_steps = v;
    else if (!strcmp(field, "ep_seen")) st->ep_seen = v;
    else if (!strcmp(field, "ep_correct")) st->ep_correct = v;
    else if (!strcmp(field, "loss_scale")) st->loss_scale = strtod(value, NULL);
    else return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) return usage();
    dp_checkpoint ck;
    if (dp_checkpoint_read(argv[1], &ck) != DP_OK) {
        fprintf(stderr, "ckpt_forge: %s\n", dp_errmsg());
        return 1;
    }
    dp_ck_section s[DP_CK_MAX_SECTIONS];
    int n = ck.n;
    memcpy(s, ck.sections, sizeof s);
    const char *edit = argv[3];
    uint32_t tag = (uint32_t)strtoul(argv[4], NULL, 0);
    dp_ck_section *x = NULL;
    for (int i = 0; i < n && !x; i++)
        if (s[i].tag == tag) x = &s[i];
    dp_drive_state st;
    char text[DP_CONFIG_TEXT_CAP];
    unsigned char *copy = NULL;
    int bad = 0;
    if (!strcmp(edit, "state") && argc == 6) {
        for (int i = 0; i < n && !x; i++)
            if (s[i].tag == DP_CK_STATE) x = &s[i];
        bad = !x || x->size != sizeof st;
        if (!bad) {
            memcpy(&st, x->data, sizeof st);
            bad = set_state(&st, argv[4], argv[5]);
            x->data = &st;
        }
    } else if (!strcmp(edit, "i64") && argc == 6) {
        bad = !x || x->size < 8 || !(copy = malloc(x->size));
        if (!bad) {
            long long v = strtoll(argv[5], NULL, 0);
            memcpy(copy, x->data, x->size);
            memcpy(copy, &v, 8);
            x->data = copy;
        }
    } else if (!strcmp(edit, "halve") && argc == 5) {
        bad = !x;
        if (!bad) x->size /= 2;
    } else if (!strcmp(edit, "dup") && argc == 5) {
        bad = !x || n == DP_CK_MAX_SECTIONS;
        if (!bad) s[n++] = *x;
    } else if (!strcmp(edit, "copy") && argc == 6) {
        bad = !x || n == DP_CK_MAX_SECTIONS;
        if (!bad) s[n] = *x, s[n++].tag = (uint32_t)strtoul(argv[5], NULL, 0);
    } else if (!strcmp(edit, "drop-line") && argc == 5) {
        for (int i = 0; i < n && !x; i++)
            if (s[i].tag == DP_CK_CONFIG) x = &s[i];
        bad = !x || x->size >= sizeof text;
        if (!bad) { /* every line but "KEY=..." */
            size_t kn = strlen(argv[4]), len = 0;
            const char *p = x->data, *end = p + x->size;
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t ln = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
                if (!(ln > kn && !memcmp(p, argv[4], kn) && p[kn] == '=')) memcpy(text + len, p, ln), len += ln;
                p += ln;
            }
            x->data = text;
            x->size = len;
        }
    } else {
        dp_checkpoint_free(&ck);
        return usage();
    }
    if (bad) {
        fprintf(stderr, "ckpt_forge: %s: cannot apply '%s %s' to this checkpoint\n", argv[1], edit, argv[4]);
        free(copy);
        dp_checkpoint_free(&ck);
        return 1;
    }
    dp_status rc = dp_checkpoint_write(argv[2], s, n);
    if (rc != DP_OK) fprintf(stderr, "ckpt_forge: %s\n", dp_errmsg());
    free(copy);
    dp_checkpoint_free(&ck);
    return rc == DP_OK ? 0 : 1;
}
