/* topo_probe: what an MPI job sees of its nodes, for launch/vcluster.sh --nodes (tests/comm/vcluster_nodes_test.sh).
 *   topo_probe [--bytes B] [--iters K]
 * Each rank prints one line:
 *   rank W of P: node_rank L of S (leader W0) net NETNS host H vnode V
 * where S and L come from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) (the node as Open MPI sees it), NETNS is
 * /proc/self/ns/net (the network namespace the rank really runs in, independent of MPI) and V is $DPVC_NODE
 * (set by vcluster's launch agent). Then rank 0 prints "nodes: N of sizes s1 s2 ..." from the leaders.
 * With --bytes B > 0, rank 0 times K MPI_Sendrecv exchanges of B bytes each way with its first node-mate
 * (shared memory) and then with the first rank of another node (TCP over the node's link), one pair at a
 * time while the other ranks wait, and prints
 *   exchange intra PEER T_s inter PEER T_s ratio X
 * ("none" for a pair that does not exist). The ratio, not a time, is what a test can assert on. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long parse_size(const char *s, const char *flag) {
  char *end;
  long v = strtol(s, &end, 10);
  if (end == s || v < 0) goto bad;
  if (*end == 'K' || *end == 'k') v <<= 10, end++;
  else if (*end == 'M' || *end == 'm') v <<= 20, end++;
  if (*end != '\0' || v > (1L << 30)) goto bad;
  return v;
bad:
  fprintf(stderr, "topo_probe: %s '%s': want a count of bytes up to 1G (suffix K or M allowed)\n", flag, s);
  MPI_Abort(MPI_COMM_WORLD, 2);
  return -1;
}

/* K exchanges of n bytes between rank 0 and peer; every rank calls it so that the timing is one pair alone */
static double exchange(int me, int peer, char *sbuf, char *rbuf, long n, int iters) {
  double t = 0.0;
  MPI_Barrier(MPI_COMM_WORLD);
  if (peer > 0 && (me == 0 || me == peer)) {
    int other = me == 0 ? peer : 0;
    /* one untimed round: connection set-up (TCP) is not the rate */
    MPI_Sendrecv(sbuf, (int)n, MPI_CHAR, other, 7, rbuf, (int)n, MPI_CHAR, other, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    double t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++)
      MPI_Sendrecv(sbuf, (int)n, MPI_CHAR, other, 7, rbuf, (int)n, MPI_CHAR, other, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    t = MPI_Wtime() - t0;
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return t;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int me, p;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  MPI_Comm_size(MPI_COMM_WORLD, &p);
  long bytes = 0;
  int iters = 3;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--bytes") && i + 1 < argc) bytes = parse_size(argv[++i], "--bytes");
    else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
      iters = atoi(argv[++i]);
      if (iters < 1 || iters > 1000) {
        if (me == 0) fprintf(stderr, "topo_probe: --iters '%s': want 1..1000\n", argv[i]);
        MPI_Abort(MPI_COMM_WORLD, 2);
      }
    } else {
      if (me == 0) fprintf(stderr, "topo_probe: unknown argument '%s' (usage: topo_probe [--bytes B] [--iters K])\n", argv[i]);
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
  }

  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int nrank, nsize;
  MPI_Comm_rank(node, &nrank);
  MPI_Comm_size(node, &nsize);
  int leader = me; /* the world rank of the node's rank 0 names the node */
  MPI_Bcast(&leader, 1, MPI_INT, 0, node);
  int *leaders = malloc(sizeof(int) * (size_t)p);
  if (!leaders) MPI_Abort(MPI_COMM_WORLD, 1);
  MPI_Allgather(&leader, 1, MPI_INT, leaders, 1, MPI_INT, MPI_COMM_WORLD);

  char net[128] = "?", host[256] = "?";
  ssize_t len = readlink("/proc/self/ns/net", net, sizeof net - 1);
  net[len > 0 ? len : 1] = '\0';
  gethostname(host, sizeof host);
  host[sizeof host - 1] = '\0';
  const char *vnode = getenv("DPVC_NODE");
  /* one line per rank, in rank order (stdout of ranks is forwarded line by line) */
  for (int r = 0; r < p; r++) {
    if (r == me) {
      printf("rank %d of %d: node_rank %d of %d (leader %d) net %s host %s vnode %s\n", me, p, nrank, nsize, leader,
             net, host, vnode ? vnode : "-");
      fflush(stdout);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  if (me == 0) {
    int nodes = 0;
    printf("nodes:");
    for (int r = 0; r < p; r++) nodes += leaders[r] == r;
    printf(" %d of sizes", nodes);
    for (int r = 0; r < p; r++) {
      if (leaders[r] != r) continue;
      int s = 0;
      for (int q = 0; q < p; q++) s += leaders[q] == r;
      printf(" %d", s);
    }
    printf("\n");
    fflush(stdout);
  }

  if (bytes > 0) {
    int intra = -1, inter = -1;
    for (int r = 1; r < p; r++) {
      if (leaders[r] == leaders[0] && intra < 0) intra = r;
      if (leaders[r] != leaders[0] && inter < 0) inter = r;
    }
    char *sbuf = malloc((size_t)bytes), *rbuf = malloc((size_t)bytes);
    if (!sbuf || !rbuf) MPI_Abort(MPI_COMM_WORLD, 1);
    memset(sbuf, me + 1, (size_t)bytes);
    double ti = exchange(me, intra, sbuf, rbuf, bytes, iters);
    double tx = exchange(me, inter, sbuf, rbuf, bytes, iters);
    if (me == 0) {
      char a[64] = "none", b[64] = "none", ratio[32] = "none";
      if (intra > 0) snprintf(a, sizeof a, "%d %.6f", intra, ti);
      if (inter > 0) snprintf(b, sizeof b, "%d %.6f", inter, tx);
      if (intra > 0 && inter > 0 && ti > 0) snprintf(ratio, sizeof ratio, "%.1f", tx / ti);
      printf("exchange %ld bytes x %d: intra %s inter %s ratio %s\n", bytes, iters, a, b, ratio);
      fflush(stdout);
    }
    free(sbuf);
    free(rbuf);
  }
  free(leaders);
  MPI_Comm_free(&node);
  MPI_Finalize();
  return 0;
}
