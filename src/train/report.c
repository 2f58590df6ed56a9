/* Progress bar (TTY) or plain progress lines, and metrics.jsonl. */
#include "dptrain/fsutil.h"
#include "dptrain/report.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double dp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

dp_status dp_report_open(dp_report *r, const char *out_dir, int progress, int quiet)
{
    memset(r, 0, sizeof *r);
    r->quiet = quiet;
    r->bar = progress < 0 ? isatty(STDERR_FILENO) : progress;
    r->last_decile = -1;
    if (out_dir && out_dir[0]) {
        dp_status rc = dp_mkdir_p(out_dir);
        if (rc != DP_OK) return rc;
        char path[1024];
        snprintf(path, sizeof path, "%s/metrics.jsonl", out_dir);
        rc = dp_open_output(path, 1, &r->metrics);
        if (rc != DP_OK) return rc;
    }
    return DP_OK;
}

void dp_report_close(dp_report *r)
{
    dp_report_end_bar(r);
    if (r->metrics) fclose(r->metrics);
    r->metrics = NULL;
}

static void fmt_eta(char *buf, size_t n, double s)
{
    if (s < 0 || s > 1e7) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void dp_report_progress(dp_report *r, double now, int epoch, int epochs, long done, long total, double loss,
                        double acc, double sps, double eta_s)
{
    if (r->quiet || total <= 0) return;
    char eta[32];
    fmt_eta(eta, sizeof eta, eta_s);
    if (r->bar) {
        if (done < total && now - r->last_draw < 0.1) return;
        r->last_draw = now;
        int width = 24, fill = (int)((double)width * (double)done / (double)total);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[width] = 0;
        fprintf(stderr, "\r\033[Kepoch %d/%d [%s] %ld/%ld loss %.4f acc %.4f %.0f samples/s ETA %s", epoch, epochs, bar,
                done, total, loss, acc, sps, eta);
        fflush(stderr);
    } else {
        int decile = (int)(10 * done / total);
        if (decile == r->last_decile || (decile == 0 && done > 1)) return;
        r->last_decile = decile;
        fprintf(stderr, "epoch %d/%d step %ld/%ld loss %.4f acc %.4f %.0f samples/s ETA %s\n", epoch, epochs, done,
                total, loss, acc, sps, eta);
    }
}

void dp_report_end_bar(dp_report *r)
{
    if (r->bar && !r->quiet && r->last_draw > 0) fprintf(stderr, "\r\033[K");
    r->last_draw = 0;
    r->last_decile = -1;
}

void dp_report_json(dp_report *r, const char *fmt, ...)
{
    if (!r->metrics) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->metrics, fmt, ap);
    va_end(ap);
    fputc('\n', r->metrics);
    if ((fflush(r->metrics) != 0 || ferror(r->metrics)) && !r->metrics_failed) {
        r->metrics_failed = 1;
        fprintf(stderr, "warning: metrics.jsonl: write failed (%s): later metrics are lost\n", strerror(errno));
    }
}
