/* Linked into every executable of the sanitized build only (DP_SANITIZE).
 *
 * Open MPI dlcloses its MCA plugins in MPI_Finalize. LeakSanitizer runs later,
 * at exit, and then sees thousands of allocations made by code that is no
 * longer mapped: it cannot name their module, so no suppression matches, and
 * the only workaround is the slow unwinder (several seconds per MPI_Init).
 * Keeping the plugins mapped lets tests/sanitize/lsan.supp match them by
 * library name with the fast unwinder. The executable exports this symbol
 * (-Wl,--export-dynamic-symbol=dlclose), so it interposes on libc's for
 * Open MPI's calls; nothing of ours calls dlclose. */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
