// `wss --version`: the version in the package's own package.json.
import { readFileSync, realpathSync } from 'node:fs';
import * as path from 'node:path';

/** The name in package.json: the file that tells this package's version. */
export const PACKAGE_NAME = 'websocketstream-node';

/**
 * The version of the package that `script` (the running cli.js) belongs to. This file is compiled
 * to ESM and CommonJS, so neither import.meta nor __dirname can locate it; the script's real path
 * can. Symlinks are resolved first: npm's node_modules/.bin/wss links to dist/esm/cli.js, and the
 * directories above the link belong to another project. Walking up skips dist/cjs/package.json,
 * which only marks its files as CommonJS and has no name.
 */
export function packageVersion(script: string): string | null {
  let directory: string;
  try {
    directory = path.dirname(realpathSync(script));
  } catch {
    return null;
  }
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(path.join(directory, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === PACKAGE_NAME && typeof manifest.version === 'string') return manifest.version;
    } catch {
      // No package.json here, or not ours: look further up.
    }
    const parent = path.dirname(directory);
    if (parent === directory) return null;
    directory = parent;
  }
}
