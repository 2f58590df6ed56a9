/* The strategy table, indexed by dp_nas_strategy, and what is common to its
 * entries: names, parsing, the host-side softmax. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nas/strategy.h"

/* one line per strategy: its record lives in its own file */
extern const nas_strategy nas_strategy_darts, nas_strategy_temperature, nas_strategy_gumbel, nas_strategy_gold,
    nas_strategy_maxw;

static const nas_strategy *const table[] = {
    [DP_NAS_DARTS] = &nas_strategy_darts,
    [DP_NAS_TEMPERATURE] = &nas_strategy_temperature,
    [DP_NAS_GUMBEL] = &nas_strategy_gumbel,
    [DP_NAS_GOLD] = &nas_strategy_gold,
    [DP_NAS_MAXW] = &nas_strategy_maxw,
};
enum { NSTRATEGIES = (int)(sizeof table / sizeof table[0]) };

const nas_strategy *nas_strategy_of(dp_nas_strategy s)
{
    return (unsigned)s < NSTRATEGIES ? table[s] : NULL;
}

const char *dp_nas_strategy_name(dp_nas_strategy s)
{
    const nas_strategy *st = nas_strategy_of(s);
    return st ? st->name : "unknown";
}

const char *nas_strategy_list(unsigned flag, int has, char *buf, size_t n)
{
    int picked[NSTRATEGIES], m = 0;
    for (int i = 0; i < NSTRATEGIES; i++)
        if (!flag || !(table[i]->flags & flag) == !has) picked[m++] = i;
    size_t len = 0;
    buf[0] = 0;
    for (int j = 0; j < m && len < n; j++) {
        const char *sep = j == 0 ? "" : j == m - 1 ? " or " : ", ";
        int w = snprintf(buf + len, n - len, "%s%s", sep, table[picked[j]]->name);
        if (w < 0) break;
        len += (size_t)w;
    }
    return buf;
}

dp_status dp_nas_strategy_parse(const char *name, dp_nas_strategy *out)
{
    for (int i = 0; i < NSTRATEGIES; i++)
        if (name && !strcmp(name, table[i]->name)) {
            *out = (dp_nas_strategy)i;
            return DP_OK;
        }
    char names[256];
    return dp_errorf(DP_ERR_ARG, "--strategy: '%s' is not %s", name ? name : "(null)",
                     nas_strategy_list(0, 1, names, sizeof names));
}

void nas_softmax_row(const float *a, int n, float t, float *w)
{
    float mx = a[0], sum = 0;
    for (int k = 1; k < n; k++) mx = a[k] > mx ? a[k] : mx;
    for (int k = 0; k < n; k++) sum += w[k] = expf((a[k] - mx) / t);
    for (int k = 0; k < n; k++) w[k] /= sum;
}

dp_tensor *nas_softmax_mix(dp_ctx *c, const dp_nas_mix *m, dp_tensor *a, long off)
{
    (void)off;
    return dp_softmax(c, a, m->temperature);
}

void nas_softmax_host_row(const float *a, const float *mask, float temp, int n, float *w)
{
    (void)mask;
    nas_softmax_row(a, n, temp, w);
}
