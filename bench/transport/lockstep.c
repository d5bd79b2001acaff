/*
 * lockstep.c - the interleaved driver of bench/20-transport.sh.
 *
 *   lockstep ROWS ROUNDS SLICE_S [TIMEOUT_S [WARM]]
 *
 * ROWS is a file of "NAME KIND ARGV..." lines (ARGV split at blanks). Each
 * row is started once, as ARGV, in slice mode: it reads commands on its
 * stdin ("t SECONDS": requests for SECONDS; "n COUNT": COUNT requests; "q"
 * or end of input: exit) and answers each with one line
 * "REQUESTS ELAPSED_S CPU_S" on its stdout. The driver gives every row one
 * warm-up slice of at least 0.25 s (not reported: connections, caches, the
 * first GC cycles), then ROUNDS rounds; in a round every live row runs one
 * slice of SLICE_S, one after the other, in an order shuffled afresh each
 * round (fixed seed, so runs are alike) so that no row always runs next to
 * the same neighbour. Each slice is preceded by WARM requests (default 2;
 * "n WARM", not reported): while the other rows ran, the caches went to
 * them, and without this a row with a larger working set would pay for
 * refilling them in every slice, which a program running on does not. A row and its baseline thus run within a round's
 * length of each other.
 * Prints on stdout:
 *   row NAME KIND             one per row, in ROWS order, first
 *   slice ROUND NAME KIND REQUESTS ELAPSED_S CPU_S
 *   rss NAME KIND KB          peak RSS of the row's process (wait4)
 *   fail NAME KIND REASON     the row is left out from then on
 * A row that does not answer within SLICE_S + TIMEOUT_S (default 30 s),
 * answers something else, or exits, is killed and reported; so is one that
 * does not exit within TIMEOUT_S of "q". SIGINT, SIGTERM and SIGHUP kill
 * every row before the driver exits. No busy waiting: poll(2) with a
 * deadline on each row's output.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ROWS 64
#define MAX_ARGS 32

typedef struct Row {
    char name[64], kind[16];
    char *argv[MAX_ARGS + 1];
    pid_t pid;          /* 0 once reaped */
    int in, out;        /* our ends: its stdin, its stdout */
    int dead;           /* failed: left out */
} Row;

static Row rows[MAX_ROWS];
static int nrows;
static volatile sig_atomic_t stopping;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Kills every row still running; async-signal-safe. */
static void kill_all(void)
{
    int i;
    for (i = 0; i < nrows; i++)
        if (rows[i].pid > 0)
            kill(rows[i].pid, SIGKILL);
}

static void on_signal(int sig)
{
    stopping = 1;
    kill_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void fail(Row *r, const char *why)
{
    int st;
    if (r->dead)
        return;
    r->dead = 1;
    printf("fail %s %s %s\n", r->name, r->kind, why);
    fflush(stdout);
    fprintf(stderr, "lockstep: row %s: %s\n", r->name, why);
    if (r->pid > 0) {
        kill(r->pid, SIGKILL);
        while (waitpid(r->pid, &st, 0) < 0 && errno == EINTR)
            ;
        r->pid = 0;
    }
    close_fd(&r->in);
    close_fd(&r->out);
}

static void start(Row *r)
{
    int in[2], out[2];
    pid_t pid;
    /* close-on-exec: no row may hold another row's pipe open */
    if (pipe(in) != 0 || pipe(out) != 0 || fcntl(in[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(in[1], F_SETFD, FD_CLOEXEC) != 0 || fcntl(out[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(out[1], F_SETFD, FD_CLOEXEC) != 0) {
        perror("lockstep: pipe");
        exit(2);
    }
    pid = fork();
    if (pid < 0) {
        perror("lockstep: fork");
        exit(2);
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
            _exit(127);
        execvp(r->argv[0], r->argv);
        fprintf(stderr, "lockstep: %s: %s\n", r->argv[0], strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    r->pid = pid;
    r->in = in[1];
    r->out = out[0];
}

/* Reads one line from the row into buf within `timeout` seconds: 1 on a
 * line, 0 on end of file, -1 on time-out or error (why set). */
static int read_line(Row *r, char *buf, size_t size, double timeout, const char **why)
{
    size_t len = 0;
    double deadline = now() + timeout;
    for (;;) {
        struct pollfd p;
        double left = deadline - now();
        ssize_t got;
        int rc;
        if (left <= 0) {
            *why = "no answer in time";
            return -1;
        }
        p.fd = r->out;
        p.events = POLLIN;
        rc = poll(&p, 1, (int)(left * 1000) + 1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            *why = "poll failed";
            return -1;
        }
        if (rc == 0)
            continue;           /* the deadline check above ends it */
        /* one byte at a time: a reply is one short line, and nothing must
         * stay buffered here past its newline */
        got = read(r->out, buf + len, 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            *why = "read failed";
            return -1;
        }
        if (got == 0)
            return 0;
        if (buf[len] == '\n') {
            buf[len] = '\0';
            return 1;
        }
        if (++len >= size - 1) {
            *why = "answer too long";
            return -1;
        }
    }
}

/* One slice: "t SECONDS" (count 0) or "n COUNT" to the row, its answer
 * checked. 1 on success. */
static int slice_of(Row *r, double seconds, long count, double timeout, long *n, double *elapsed,
                    double *cpu)
{
    char cmd[64], line[256], extra;
    const char *why = "exited";
    int len = count > 0 ? snprintf(cmd, sizeof cmd, "n %ld\n", count)
                        : snprintf(cmd, sizeof cmd, "t %.6f\n", seconds);
    if (write(r->in, cmd, (size_t)len) != len) {
        fail(r, "cannot send the command (exited?)");
        return 0;
    }
    switch (read_line(r, line, sizeof line, seconds + timeout, &why)) {
    case 1:
        if (sscanf(line, "%ld %lf %lf %c", n, elapsed, cpu, &extra) == 3 && *n >= 0 && *elapsed > 0)
            return 1;
        why = "answer is not \"REQUESTS ELAPSED_S CPU_S\"";
        break;
    case 0:
        why = "exited before answering";
        break;
    default:
        break;
    }
    fail(r, why);
    return 0;
}

static int slice(Row *r, double seconds, double timeout, long *n, double *elapsed, double *cpu)
{
    return slice_of(r, seconds, 0, timeout, n, elapsed, cpu);
}

/* "q", then waits for the row to exit within `timeout`; prints its peak RSS. */
static void finish(Row *r, double timeout)
{
    char line[256];
    const char *why = NULL;
    struct rusage ru;
    int st, rc;
    if (r->dead)
        return;
    if (write(r->in, "q\n", 2) != 2) { /* it may have exited already: wait4 tells */
    }
    close_fd(&r->in);
    /* the row closes its stdout on exit: end of file, or a stray line */
    while ((rc = read_line(r, line, sizeof line, timeout, &why)) == 1)
        ;
    if (rc < 0) {
        fail(r, "did not exit after q");
        return;
    }
    close_fd(&r->out);
    while (wait4(r->pid, &st, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("lockstep: wait4");
            r->pid = 0;
            return;
        }
    }
    r->pid = 0;
    r->dead = 1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("fail %s %s exit status %d\n", r->name, r->kind, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        fprintf(stderr, "lockstep: row %s: exit status %d\n", r->name,
                WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        return;
    }
    printf("rss %s %s %ld\n", r->name, r->kind, ru.ru_maxrss);
}

static void read_rows(const char *path)
{
    char line[4096];
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(2);
    }
    while (fgets(line, sizeof line, f)) {
        Row *r;
        char *tok, *save = NULL;
        int argc = 0;
        if (nrows == MAX_ROWS) {
            fprintf(stderr, "lockstep: more than %d rows\n", MAX_ROWS);
            exit(2);
        }
        r = &rows[nrows];
        memset(r, 0, sizeof *r);
        tok = strtok_r(line, " \t\n", &save);
        if (!tok)
            continue;
        snprintf(r->name, sizeof r->name, "%s", tok);
        tok = strtok_r(NULL, " \t\n", &save);
        if (!tok) {
            fprintf(stderr, "lockstep: row %s has no kind\n", r->name);
            exit(2);
        }
        snprintf(r->kind, sizeof r->kind, "%s", tok);
        while ((tok = strtok_r(NULL, " \t\n", &save)) != NULL) {
            if (argc == MAX_ARGS) {
                fprintf(stderr, "lockstep: row %s has too many arguments\n", r->name);
                exit(2);
            }
            r->argv[argc++] = strdup(tok);
        }
        if (argc == 0) {
            fprintf(stderr, "lockstep: row %s has no command\n", r->name);
            exit(2);
        }
        nrows++;
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    int rounds, i, round, order[MAX_ROWS];
    double seconds, timeout = 30;
    long warm = 2;
    unsigned long seed = 20;    /* fixed: every run shuffles alike */
    struct sigaction sa;

    if (argc < 4 || (rounds = atoi(argv[2])) < 1 || (seconds = atof(argv[3])) <= 0) {
        fprintf(stderr, "usage: lockstep ROWS ROUNDS SLICE_S [TIMEOUT_S [WARM]]\n");
        return 2;
    }
    if (argc > 4 && (timeout = atof(argv[4])) <= 0) {
        fprintf(stderr, "lockstep: bad TIMEOUT_S %s\n", argv[4]);
        return 2;
    }
    if (argc > 5 && (warm = atol(argv[5])) < 0) {
        fprintf(stderr, "lockstep: bad WARM %s\n", argv[5]);
        return 2;
    }
    read_rows(argv[1]);

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);   /* a row that died shows as a failed write */

    for (i = 0; i < nrows; i++) {
        printf("row %s %s\n", rows[i].name, rows[i].kind);
        fflush(stdout);         /* before fork: nothing buffered twice */
        start(&rows[i]);
        order[i] = i;
    }
    /* warm-up, in list order, at least 0.25 s each; the first answer also
     * means "started" */
    for (i = 0; i < nrows && !stopping; i++) {
        long n;
        double e, c;
        slice(&rows[i], seconds < 0.25 ? 0.25 : seconds, timeout, &n, &e, &c);
    }
    for (round = 1; round <= rounds && !stopping; round++) {
        for (i = nrows - 1; i > 0; i--) {   /* Fisher-Yates, an LCG for the dice */
            int j, t;
            seed = seed * 6364136223846793005UL + 1442695040888963407UL;
            j = (int)((seed >> 33) % (unsigned long)(i + 1));
            t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (i = 0; i < nrows; i++) {
            Row *r = &rows[order[i]];
            long n;
            double e, c;
            if (r->dead)
                continue;
            /* a few requests first, not counted: what ran meanwhile left
             * the caches to the other rows, and a row with a larger working
             * set would pay more for that at the start of every slice */
            if (warm > 0 && !slice_of(r, 0, warm, timeout, &n, &e, &c))
                continue;
            if (slice(r, seconds, timeout, &n, &e, &c))
                printf("slice %d %s %s %ld %.6f %.6f\n", round, r->name, r->kind, n, e, c);
        }
        fflush(stdout);
    }
    for (i = 0; i < nrows; i++)
        finish(&rows[i], timeout);
    return 0;
}
