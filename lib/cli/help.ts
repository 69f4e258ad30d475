// The usage texts: one for the tool, one per command.
import { DEFAULT_DRAIN_TIMEOUT, DEFAULT_QUIET_WAIT } from './defaults.js';

/** The command name, as installed by package.json "bin". */
export const COMMAND = 'wss';

/** Exit statuses, as CONNECT_USAGE documents them. */
export const ExitStatus = {
  OK: 0,
  /** The connection could not be opened, the server could not listen, or something else failed. */
  FAILED: 1,
  USAGE: 2,
  UNCLEAN_CLOSE: 3,
  /** 128 + SIGINT, as shells report an interrupted command. */
  INTERRUPTED: 130,
} as const;

export const TOOL_USAGE = `Usage: ${COMMAND} <command> [options]

A WebSocket client and server built on the WHATWG WebSocketStream API.

Commands:
  connect <url>    open a WebSocket: stdin lines are sent, messages received are printed
  serve            run a WebSocket server (echo, broadcast or print) with a demo page at /
  help [command]   show this help, or a command's

Options:
  -V, --version    print the version and exit
  -h, --help       show this help

Run '${COMMAND} <command> --help' for a command's options.
`;

export const CONNECT_USAGE = `Usage: ${COMMAND} connect [options] <url>

Opens a WebSocket to <url> (ws://, wss://, http:// or https://; ws:// when no scheme is given;
ws+unix:///path/to.sock:/request/path for a Unix domain socket).
Each line read from stdin is sent as a text message (without its line ending; an empty line is
an empty message). Each message received is written to stdout: text as is, binary as
"[binary N bytes] <hex>". Status lines (connected, closed, errors) go to stderr, so stdout holds
only messages. When stdin ends, the connection stays open until no message has arrived for
--wait milliseconds (so that the replies to the last lines are printed), or until the server
closes; then it is closed cleanly and the close code and reason are printed. On a terminal,
lines are typed at a "> " prompt and messages received are marked "< ".

Options:
  -H, --header <name: value>  add a request header (repeatable)
  -o, --origin <origin>       send this Origin header, as a browser on that site would
  -p, --protocol <name>       offer a subprotocol (repeatable, or comma-separated)
  -b, --binary                send each stdin line as a binary message, written in hex
                              ("00ff10" or "00 ff 10") or base64; lines that are not are skipped
      --binary-format <f>     hex or base64: how binary messages are printed, in --json too,
                              and how --binary reads them (default hex)
      --save-binary <dir>     write each binary message received to <dir>/message-N.bin
                              instead of printing it
  -j, --json                  print one JSON object per line: each message received, with its
                              kind (text or binary), time, size in bytes and data, and the
                              open, close and error events
      --no-deflate            do not offer permessage-deflate compression
      --ca <file>             trust the CA certificates in this PEM file (wss://)
  -k, --insecure              do not verify the server's TLS certificate
      --proxy <url|env>       connect through an HTTP(S) proxy with CONNECT
                              (http://user:password@host:port, or https://) or a SOCKS5 proxy
                              (socks5://user:password@host:1080; socks5h:// lets the proxy
                              resolve names); "env" uses HTTPS_PROXY/HTTP_PROXY, else
                              ALL_PROXY, unless NO_PROXY matches (default: none)
      --ping <ms>             ping every <ms> milliseconds; no pong within <ms> drops the
                              connection (an unclean close)
      --close-code <code>     the close code sent at the end or on Ctrl-C: 1000 or 3000-4999
                              (default 1000)
      --close-reason <text>   the close reason sent (at most 123 UTF-8 bytes)
  -w, --wait <ms>             when stdin ends, close once no message has arrived for <ms>
                              milliseconds (default ${DEFAULT_QUIET_WAIT}; 0 closes at once)
      --keep-open             when stdin ends, do not close: wait for the server to, or Ctrl-C
  -v, --verbose               also report on stderr each message sent and received (kind and
                              size), the handshake's duration, when and why the close is sent,
                              and a summary of the traffic
  -q, --quiet                 no status lines on stderr, only errors and warnings
  -h, --help                  show this help

Colours are used on terminals only; NO_COLOR turns them off, FORCE_COLOR on.

Exit status: 0 after a clean close (whatever its code), 1 when the connection could not be
opened (the cause is printed, with a hint when the mistake is a common one), 2 for a usage
error, 3 after an unclean close (no closing handshake: a dropped connection, a protocol error,
a missed pong). A second Ctrl-C exits at once with 130.

Examples:
  echo hello | ${COMMAND} connect ws://127.0.0.1:8080/
  ${COMMAND} connect wss://example.com/feed -H 'Authorization: Bearer t0k3n' -p v2.chat
  printf '0001ff\\n' | ${COMMAND} connect --binary --close-code 4000 --close-reason done ws://localhost:8080
  echo '{"op":"subscribe"}' | ${COMMAND} connect --json --wait 5000 wss://example.com/feed
`;

export const SERVE_USAGE = `Usage: ${COMMAND} serve [options]

Runs a WebSocket server. Plain HTTP GET / serves a demo page: a WebSocket console for the
browser (its WebSocketStream, or WebSocket where it has none) that talks to this server or any
other, with a live plot of the message rate and round-trip time. Connections, subprotocols and
close codes are logged to stderr.

Modes:
  echo       every message goes back to its sender (the default)
  broadcast  every message goes to every connected client, the sender included; a client with
             more than 16 MiB of messages waiting to be sent is closed with 4008
  print      messages are written to stdout (text as is, binary as "[binary N bytes] <hex>");
             nothing is sent back

Options:
  -m, --mode <mode>         echo, broadcast or print (default echo)
      --port <port>         port to listen on (default 8080; 0 picks a free one)
      --host <host>         address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)
      --socket <path>       listen on this Unix domain socket instead of a port; clients
                            connect to ws+unix://<path>:/ (the file must not exist yet)
      --tls-cert <file>     serve https:// and wss:// with this PEM certificate (with --tls-key)
      --tls-key <file>      the certificate's PEM private key
      --protocols <a,b>     subprotocols this server speaks; the client's first offer that is
                            listed here is selected
      --deflate             accept permessage-deflate compression
      --ping <ms>           ping every client every <ms> milliseconds; no pong within <ms> drops it
  -j, --json                print mode: one JSON object per message, as \`connect --json\` does,
                            with the number of the connection it came from
      --binary-format <f>   print mode: binary messages in hex or base64 (default hex)
      --workers <n|auto>    run <n> worker processes that share the port (auto: one per core),
                            each with its own connections; one that dies is replaced. Not with
                            --mode broadcast: a message would reach only its worker's clients
      --drain-timeout <ms>  when stopping, how long clients get to answer the 1001 close before
                            they are dropped (default ${DEFAULT_DRAIN_TIMEOUT})
  -h, --help                show this help

Ctrl-C (SIGINT) or SIGTERM stops the server: open connections are closed with 1001 first, for
at most --drain-timeout milliseconds. With --workers, the primary process has every worker do
so, then exits. A second signal exits at once.

Examples:
  ${COMMAND} serve --mode broadcast
  ${COMMAND} serve --mode print --port 9000 --protocols chat,json > messages.log
  ${COMMAND} serve --workers auto --host 0.0.0.0 --ping 20000
`;
