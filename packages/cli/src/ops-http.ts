// The operations HTTP server (gateway.yaml http) as `mailgw start`, its supervisor and
// `mailgw listen` all run it: the same listen address, token, write switch and configuration
// summary; only what /healthz adds about the running processes differs.
import type { HttpConfig } from '@mailgw/config';
import { startOpsHttp, type GatewayMetrics, type HeartbeatPressure, type OpsHttpServer, type QueueAdmin, type WorkerSource } from '@mailgw/ops';
import type { Policy } from '@mailgw/policy';
import type { Logger } from 'pino';

export function serveOpsHttp(o: {
  readonly http: HttpConfig;
  /** The policy in force (it changes on reload). */
  readonly policy: () => Policy;
  readonly metrics: GatewayMetrics;
  readonly admin: QueueAdmin;
  readonly logger: Logger;
  readonly facts: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** The gateway's back pressure (the highest of its listener processes); none without a listener. */
  readonly backPressure?: () => HeartbeatPressure | null | Promise<HeartbeatPressure | null>;
}): Promise<OpsHttpServer> {
  return startOpsHttp({
    listen: { address: o.http.listen.address, port: o.http.listen.port },
    token: o.http.token ?? null,
    allowWrite: o.http.allowWrite,
    metrics: o.metrics,
    admin: o.admin,
    logger: o.logger,
    config: () => {
      const p = o.policy();
      return {
        fqdn: p.config.gateway.fqdn,
        connectors: p.connectors.map((c) => ({ name: c.name, enabled: c.config.enabled, usage: c.config.usage, bindings: c.config.bindings.map((b) => b.text) })),
      };
    },
    facts: o.facts,
    ...(o.backPressure ? { backPressure: o.backPressure } : {}),
  });
}

/** What /healthz (and the supervisor's sum of its children) says of a process's delivery workers. */
export function workerFacts(w: WorkerSource): { deliveriesInProgress: number; deliveriesWaitingForMemory: number; crowdedNextHops: number } {
  return { deliveriesInProgress: w.active, deliveriesWaitingForMemory: w.messageMemory.waiting, crowdedNextHops: w.crowding.crowdedNextHops };
}
