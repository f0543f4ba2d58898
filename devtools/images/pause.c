/*
 * pause: the pod sandbox process for the Toolforge dev cluster.
 *
 * Holds the pod's namespaces open and does nothing else, like Kubernetes'
 * own pause container: it blocks until SIGINT or SIGTERM arrives, then
 * exits 0. As PID 1 of a pod with a shared PID namespace it also reaps
 * orphaned children when SIGCHLD arrives.
 *
 * Built by devtools/src/toolforge_dev/images.py with
 *   gcc -static -Os -o pause pause.c && strip pause
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "toolforge-dev-pause 1.0"

static void on_terminate(int signo)
{
	(void)signo;
	_exit(0);
}

static void on_child(int signo)
{
	int saved_errno = errno;

	(void)signo;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved_errno;
}

static int install(int signo, void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = (signo == SIGCHLD) ? (SA_RESTART | SA_NOCLDSTOP) : 0;
	return sigaction(signo, &sa, NULL);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		printf("%s\n", VERSION);
		return 0;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: warning: not running as PID 1\n");

	if (install(SIGINT, on_terminate) < 0 || install(SIGTERM, on_terminate) < 0 ||
	    install(SIGCHLD, on_child) < 0) {
		perror("pause: sigaction");
		return 1;
	}

	for (;;)
		pause();

	fprintf(stderr, "pause: error: infinite loop terminated\n");
	return 42;
}
