/* Whole text lines and escaped echoes (src/base/text.c): a line is one line whatever its length up to the
 * limit, longer is refused naming the line, a NUL in a line is refused; dp_escape keeps UTF-8, turns control
 * bytes and broken UTF-8 into \xNN, and cuts long text at a whole escape. */
#include <criterion/criterion.h>
#include "timeout.h"
#include <stdio.h>
#include <string.h>

#include "dptrain/text.h"

static FILE *text_file(const char *s, size_t n)
{
    FILE *f = tmpfile();
    cr_assert(f);
    cr_assert_eq(fwrite(s, 1, n, f), n);
    rewind(f);
    return f;
}

Test(line_read, whole_lines_and_the_end, .timeout = DP_TIMEOUT(10))
{
    static const char in[] = "one\r\n\ntwo words\nlast without newline";
    FILE *f = text_file(in, sizeof in - 1);
    char buf[32];
    size_t len;
    int eof;
    const char *want[] = {"one", "", "two words", "last without newline"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(dp_line_read(f, "t", i + 1, buf, sizeof buf, &len, &eof), DP_OK, "%s", dp_errmsg());
        cr_assert_not(eof);
        cr_assert_str_eq(buf, want[i]);
        cr_assert_eq(len, strlen(want[i]));
    }
    cr_assert_eq(dp_line_read(f, "t", 5, buf, sizeof buf, &len, &eof), DP_OK);
    cr_assert(eof);
    fclose(f);
}

Test(line_read, longest_line_taken_one_more_refused, .timeout = DP_TIMEOUT(10))
{
    char in[64], buf[9]; /* lines of up to 8 bytes */
    snprintf(in, sizeof in, "12345678\n123456789\nnext\n");
    FILE *f = text_file(in, strlen(in));
    size_t len;
    int eof;
    cr_assert_eq(dp_line_read(f, "q.txt", 1, buf, sizeof buf, &len, &eof), DP_OK);
    cr_assert_str_eq(buf, "12345678");
    cr_assert_eq(dp_line_read(f, "q.txt", 2, buf, sizeof buf, &len, &eof), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "q.txt:2: line longer than 8 bytes"), "%s", dp_errmsg());
    fclose(f);
}

Test(line_read, nul_in_a_line_refused, .timeout = DP_TIMEOUT(10))
{
    static const char in[] = "ok\nbad\0tail\n";
    FILE *f = text_file(in, sizeof in - 1);
    char buf[32];
    size_t len;
    int eof;
    cr_assert_eq(dp_line_read(f, "stdin", 1, buf, sizeof buf, &len, &eof), DP_OK);
    cr_assert_eq(dp_line_read(f, "stdin", 2, buf, sizeof buf, &len, &eof), DP_ERR_FORMAT);
    cr_assert(strstr(dp_errmsg(), "stdin:2: NUL byte"), "%s", dp_errmsg());
    fclose(f);
}

Test(escape, control_bytes_and_utf8, .timeout = DP_TIMEOUT(10))
{
    char buf[DP_ESCAPE_CAP];
    cr_assert_str_eq(dp_escape("plain name-1.x", buf, sizeof buf), "plain name-1.x");
    cr_assert_str_eq(dp_escape("a\033[2Jb\x07\x7f", buf, sizeof buf), "a\\x1b[2Jb\\x07\\x7f");
    cr_assert_str_eq(dp_escape("back\\slash\ttab\n", buf, sizeof buf), "back\\\\slash\\x09tab\\x0a");
    cr_assert_str_eq(dp_escape("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", buf, sizeof buf),
                     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"); /* é, €, an emoji */
    /* C1 controls (U+009B is a CSI on some terminals), a lone 0x9b, overlong and cut sequences */
    cr_assert_str_eq(dp_escape("\xc2\x9b" "1m", buf, sizeof buf), "\\xc2\\x9b1m");
    cr_assert_str_eq(dp_escape("\x9b\xc0\xaf\xe2\x82", buf, sizeof buf), "\\x9b\\xc0\\xaf\\xe2\\x82");
    cr_assert_str_eq(dp_escape("", buf, sizeof buf), "");
    cr_assert_str_eq(DP_ESC("x\x01y"), "x\\x01y");
}

Test(escape, cut_at_a_whole_escape, .timeout = DP_TIMEOUT(10))
{
    char buf[12];
    cr_assert_str_eq(dp_escape("abcdefghijk", buf, sizeof buf), "abcdefghijk"); /* fits exactly */
    cr_assert_str_eq(dp_escape("abcdefghijkl", buf, sizeof buf), "abcdefgh...");
    cr_assert_str_eq(dp_escape("abcdef\033\033", buf, sizeof buf), "abcdef...");
    cr_assert_str_eq(dp_escape("ab\033\033\033", buf, sizeof buf), "ab\\x1b...");
    char big[4000];
    memset(big, 0x1b, sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *e = DP_ESC(big);
    cr_assert_lt(strlen(e), DP_ESCAPE_CAP);
    cr_assert(strstr(e, "..."));
}
