// What the system suite (`npm run test:system`) needs from the machine: programs from Debian's
// packages. A missing one fails the spec that needs it, naming the package to install; nothing in
// this suite is skipped, so a machine without the service cannot pass it by accident.
import fs from 'node:fs';
import path from 'node:path';

/** Directories searched besides PATH: daemons such as nginx and danted live in sbin. */
const SBIN = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/**
 * The absolute path of `command` (a name looked up in PATH and sbin, or an absolute path), or an
 * Error telling which Debian package provides it.
 */
export function requireProgram(command: string, debianPackage: string, neededBy: string): string {
  const candidates = path.isAbsolute(command)
    ? [command]
    : [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...SBIN].map((dir) => path.join(dir, command));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(
    `${command} is missing: ${neededBy} needs Debian's ${debianPackage} ` +
      `(apt-get install -y --no-install-recommends ${debianPackage}; .ci/run installs it)`,
  );
}
