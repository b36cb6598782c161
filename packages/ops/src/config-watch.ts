// Live reload triggers: a change to gateway.yaml or to a file in connectors.d/ or send-connectors.d/ (fs.watch on
// their directories, since editors often replace a file by renaming a new one over it), and
// SIGHUP. Bursts (an editor's write + rename, `cp -r`) are debounced into one reload.
import { existsSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

export interface ConfigWatchOptions {
  /** Path of gateway.yaml. */
  readonly gatewayFile: string;
  /** The connectors directory. */
  readonly connectorsDir: string;
  /** The send connectors directory (watched when it exists). */
  readonly sendConnectorsDir?: string | undefined;
  /** Quiet time before reloading (default 300 ms). */
  readonly debounceMs?: number;
  /** Also reload on SIGHUP (default true). */
  readonly sighup?: boolean;
  /** Called once per burst with what triggered it. */
  readonly onChange: (why: string) => void;
  /** A directory that cannot be watched (the reload then needs SIGHUP). */
  readonly onWatchError?: (err: Error, dir: string) => void;
}

export interface ConfigWatch {
  close(): void;
}

const CONNECTOR_FILE = /\.(ya?ml|json)$/i;

export function watchConfig(o: ConfigWatchOptions): ConfigWatch {
  const debounceMs = o.debounceMs ?? 300;
  const gatewayDir = path.dirname(path.resolve(o.gatewayFile));
  const gatewayName = path.basename(o.gatewayFile);
  const connectorsDir = path.resolve(o.connectorsDir);
  let timer: NodeJS.Timeout | null = null;
  let reasons = new Set<string>();
  const trigger = (why: string) => {
    reasons.add(why);
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      const all = [...reasons].join(', ');
      reasons = new Set();
      o.onChange(all);
    }, debounceMs);
  };

  const watchers: FSWatcher[] = [];
  const watchDir = (dir: string, relevant: (name: string) => boolean) => {
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        // Some platforms give no name: treat that as a change of anything.
        const n = name === null ? null : String(name);
        if (n === null || relevant(n)) trigger(path.join(dir, n ?? ''));
      });
      w.on('error', (err) => o.onWatchError?.(err, dir));
      watchers.push(w);
    } catch (err) {
      o.onWatchError?.(err as Error, dir);
    }
  };
  watchDir(gatewayDir, (n) => n === gatewayName || (gatewayDir === connectorsDir && CONNECTOR_FILE.test(n)));
  if (connectorsDir !== gatewayDir) watchDir(connectorsDir, (n) => CONNECTOR_FILE.test(n));
  const sendDir = o.sendConnectorsDir === undefined ? null : path.resolve(o.sendConnectorsDir);
  if (sendDir !== null && sendDir !== gatewayDir && sendDir !== connectorsDir && existsSync(sendDir)) watchDir(sendDir, (n) => CONNECTOR_FILE.test(n));

  const onHup = () => trigger('SIGHUP');
  if (o.sighup ?? true) process.on('SIGHUP', onHup);
  return {
    close() {
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
      process.off('SIGHUP', onHup);
    },
  };
}
