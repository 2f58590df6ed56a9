#include <criterion/criterion.h>
#include <string.h>

#include "dptrain/checkpoint.h"
#include "dptrain/dsi_train.h"
#include "member_files.h"

void tm_rewrite_section(const char *path, uint32_t tag, const void *data, uint64_t size)
{
    dp_checkpoint ck;
    cr_assert_eq(dp_checkpoint_read(path, &ck), DP_OK, "%s", dp_errmsg());
    dp_ck_section s[DP_CK_MAX_SECTIONS];
    int n = 0, seen = 0;
    for (int i = 0; i < ck.n; i++) {
        s[n] = ck.sections[i];
        if (s[n].tag == tag) {
            seen = 1;
            if (size == 0) continue;
            s[n].data = data;
            s[n].size = size;
        }
        n++;
    }
    cr_assert(seen, "%s has no section %u", path, tag);
    cr_assert_eq(dp_checkpoint_write(path, s, n), DP_OK, "%s", dp_errmsg());
    dp_checkpoint_free(&ck);
}

void tm_expect_rejected(const char *path, const char *what)
{
    dp_dsi_member mb;
    dp_status rc = dp_dsi_member_load(path, &mb);
    cr_assert_eq(rc, DP_ERR_FORMAT, "%s: %s (%s)", what, dp_status_name(rc), dp_errmsg());
    cr_assert(strstr(dp_errmsg(), path) && strstr(dp_errmsg(), what), "expected \"%s\" in: %s", what, dp_errmsg());
}
