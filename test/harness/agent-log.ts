// The agent log (Exchange's Get-AgentLog) in a temporary directory, written as mailgw start
// writes it (through the listener's observer) and read back as `mailgw agent-log` reads it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentLog, readAgentLog, type AgentLogEntry } from '@mailgw/ops';

export interface TestAgentLog {
  readonly log: AgentLog;
  /** Every line written so far, oldest first. */
  entries(): Promise<AgentLogEntry[]>;
  close(): Promise<void>;
}

export function tempAgentLog(): TestAgentLog {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mailgw-agentlog-'));
  const log = new AgentLog(dir);
  return {
    log,
    async entries() {
      await new Promise((r) => setTimeout(r, 50)); // the file stream's last write
      const out: AgentLogEntry[] = [];
      for await (const e of readAgentLog(dir)) out.push(e);
      return out;
    },
    async close() {
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
