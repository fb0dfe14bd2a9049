/* An LD_PRELOAD shim for tests/agent/test_agent_peer_fallback.py: getsockopt(SOL_SOCKET,
 * SO_PEERPIDFD) fails with ENOPROTOOPT, as on a kernel older than Linux 6.5; every other
 * call goes to the C library's getsockopt. Each intercepted call appends one byte to the
 * file named by KEYCELL_SHIM_COUNT (when set), so a test can tell that the shim was hit.
 *
 * cc -shared -fPIC -O2 -o shim.so peerpidfd_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SHIM_SO_PEERPIDFD 77 /* asm-generic value, as in src/memory/sys.rs */

typedef int (*getsockopt_fn)(int, int, int, void *, socklen_t *);

static getsockopt_fn real_getsockopt;
static char *count_path;

__attribute__((constructor)) static void shim_init(void) {
    const char *p = getenv("KEYCELL_SHIM_COUNT");
    if (p != NULL && *p != '\0')
        count_path = strdup(p);
    real_getsockopt = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
}

static void count_call(void) {
    if (count_path == NULL)
        return;
    int fd = open(count_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        ssize_t n = write(fd, "x", 1);
        (void)n;
        close(fd);
    }
}

int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen) {
    if (level == SOL_SOCKET && optname == SHIM_SO_PEERPIDFD) {
        count_call();
        errno = ENOPROTOOPT;
        return -1;
    }
    getsockopt_fn real = real_getsockopt;
    if (real == NULL) /* called before the constructor ran */
        real = (getsockopt_fn)dlsym(RTLD_NEXT, "getsockopt");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(fd, level, optname, optval, optlen);
}
