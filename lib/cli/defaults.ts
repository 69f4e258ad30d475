// The defaults of `connect` that its usage text quotes (kept apart so that help.ts need not
// import the command it describes).

/**
 * `--wait`'s default: when stdin ends, how long the connection must be quiet before it is closed.
 * Replies to the last lines are usually on their way, and a WebSocketStream drops data messages
 * that arrive once its close frame is sent, so closing at EOF would lose them. A second covers a
 * slow network and a server that thinks before answering, and costs a script little.
 */
export const DEFAULT_QUIET_WAIT = 1000;
