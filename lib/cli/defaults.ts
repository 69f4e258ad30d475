// The defaults of `connect` that its usage text quotes (kept apart so that help.ts need not
// import the command it describes).

/**
 * `--wait`'s default: when stdin ends, how long the connection must be quiet before it is closed.
 * Replies to the last lines are usually on their way, and a WebSocketStream drops data messages
 * that arrive once its close frame is sent, so closing at EOF would lose them. A second covers a
 * slow network and a server that thinks before answering, and costs a script little.
 */
export const DEFAULT_QUIET_WAIT = 1000;

/**
 * `serve --drain-timeout`'s default: how long a stopping server waits for its clients to answer
 * its 1001 close frames before it drops the rest and exits. Clients that answer take a round
 * trip; the library gives each one at most its closing-handshake time (5 s) anyway, so 10 s is
 * reached only when something is stuck, and fits inside the grace periods of service managers
 * (systemd waits 90 s, Kubernetes 30 s, before they kill).
 */
export const DEFAULT_DRAIN_TIMEOUT = 10_000;

/** `serve --workers`: more processes than this is a typo, not a machine. */
export const MAX_WORKERS = 1024;

/**
 * A worker that dies after running this long is replaced at once; one that dies sooner (crashing
 * at start-up, say) is replaced only after a delay that doubles with each such death in a row.
 */
export const WORKER_STABLE_UPTIME = 10_000;
/** The delay before the first replacement of a worker that died young. */
export const FIRST_RESTART_DELAY = 100;
/** The longest delay between replacements of workers that keep dying young. */
export const MAX_RESTART_DELAY = 30_000;
/**
 * After --drain-timeout, a draining worker drops its clients and exits by itself; one that has
 * not exited this much later (stuck in a loop) is killed by the primary.
 */
export const WORKER_EXIT_GRACE = 2_000;
