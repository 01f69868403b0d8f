/* The address of a memory fault, written to a file descriptor before the process dies of it: the
 * harness places tensors between guard pages and names the one whose guard a kernel touched. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t fault_fd = -1;

static void report_fault(int signal_number, siginfo_t *info, void *context) {
    char line[32] = "fault 0x";
    char digits[16];
    uintptr_t address = (uintptr_t)info->si_addr;
    int count = 0;
    (void)signal_number;
    (void)context;
    do {
        digits[count++] = "0123456789abcdef"[address & 15u];
        address >>= 4;
    } while (address != 0 && count < 16);
    size_t length = 8;
    while (count > 0) line[length++] = digits[--count];
    line[length++] = '\n';
    if (write(fault_fd, line, length) < 0) {
        /* nothing left to do: the process ends at the return either way */
    }
    /* SA_RESETHAND: returning repeats the access under the default action, which ends the process */
}

int q3_report_faults(int fd) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = report_fault;
    action.sa_flags = SA_SIGINFO | SA_RESETHAND;
    sigemptyset(&action.sa_mask);
    fault_fd = fd;
    if (sigaction(SIGSEGV, &action, NULL) != 0 || sigaction(SIGBUS, &action, NULL) != 0) return -1;
    return 0;
}
