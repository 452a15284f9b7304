/*
 * The pod sandbox process of the local node: holds the pod's namespaces open, reaps
 * orphans (it is PID 1 of the pod when the pod shares its PID namespace) and exits on
 * SIGINT/SIGTERM. containerd runs it from the image ghcr.io/apiroutes/pause, which the
 * project's image builder makes from this file (built static: the image has nothing else).
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { _exit(128 + sig); }

static void reap(int sig) {
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(void) {
	struct sigaction term = {.sa_handler = stop};
	struct sigaction child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
	if (sigaction(SIGINT, &term, NULL) < 0 || sigaction(SIGTERM, &term, NULL) < 0 ||
	    sigaction(SIGCHLD, &child, NULL) < 0)
		return 1;
	for (;;)
		pause();
}
