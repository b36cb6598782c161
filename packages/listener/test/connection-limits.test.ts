// The supervisor's one count across listener processes (ConnectionCounter) as the listener
// processes reach it (RemoteConnectionLimits over an IPC channel): the wiring between them is
// the channel's, here in one process so that which "process" asks is certain.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfig, formatIssue } from '@mailgw/config';
import { compilePolicy, connect, type Policy, type Session } from '@mailgw/policy';
import { parse } from 'yaml';
import { ConnectionCounter, RemoteConnectionLimits, isAdmissionMessage, type Admission, type AdmissionChannel, type AdmissionMessage } from '../src/connection-limits.js';

function policy(connector: Record<string, unknown>): Policy {
  const built = buildConfig({
    gatewayFile: 'gateway.yaml',
    gatewayData: { fqdn: 'mail.contoso.test', acceptedDomains: [{ domain: 'contoso.test' }] },
    connectorFiles: [{ file: 'connectors.d/l.yaml', data: { name: 'L', usage: 'Internet', bindings: ['0.0.0.0:25'], ...connector } }],
    readReferenced: (p) => ({ ok: false, error: 'none', file: p }),
    parseYaml: parse,
    fallbackFqdn: 'host.test',
  });
  if (!built.ok) throw new Error(built.errors.map(formatIssue).join('\n'));
  const r = compilePolicy(built.config);
  if (!r.ok) throw new Error(r.errors.map(formatIssue).join('\n'));
  return r.policy;
}

function session(p: Policy, clientIP: string): Session {
  const r = connect(p, { localAddress: '127.0.0.1', localPort: 25, clientIP });
  assert.ok(r.session);
  return r.session;
}

/** A supervisor holding one counter, and the channels of the listener processes talking to it. */
function supervisor() {
  const counter = new ConnectionCounter();
  const sent: AdmissionMessage[] = [];
  const channel = (): AdmissionChannel => {
    let deliver: (m: unknown) => void = () => undefined;
    const tickets = new Map<number, () => void>();
    return {
      send(m) {
        sent.push(m);
        assert.ok(isAdmissionMessage(m));
        // The supervisor answers on a later turn of the event loop, as over a pipe.
        setImmediate(() => {
          if (m.type === 'mailgw:admit') {
            const r = counter.admit(m.request);
            if (r.release) tickets.set(m.id, r.release);
            deliver({ type: 'mailgw:admitted', id: m.id, decision: r.decision });
          } else {
            tickets.get(m.id)?.();
            tickets.delete(m.id);
          }
        });
        return true;
      },
      onMessage(handler) {
        deliver = handler;
      },
    };
  };
  return { counter, sent, channel };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('connection limits across listener processes', () => {
  it('maxInboundConnectionPerSource counts the connections of every process: the third from one address is refused 421 4.3.2', async () => {
    const p = policy({ maxInboundConnection: 100, maxInboundConnectionPerSource: 2 });
    const sup = supervisor();
    const one = new RemoteConnectionLimits(sup.channel());
    const two = new RemoteConnectionLimits(sup.channel());
    const a = (await one.admit(session(p, '10.0.0.1'))) as Admission;
    const b = (await two.admit(session(p, '10.0.0.1'))) as Admission;
    assert.ok(a.ok && b.ok);
    const c = await one.admit(session(p, '10.0.0.1'));
    assert.equal(c.ok, false);
    if (!c.ok) assert.match(`${c.decision.reply.code} ${c.decision.reply.enhanced}`, /^421 4\.3\.2$/);
    assert.ok((await two.admit(session(p, '10.0.0.2'))).ok, 'another address is not affected');
    // A slot released in one process is free for the other.
    a.release();
    await settle();
    assert.ok((await two.admit(session(p, '10.0.0.1'))).ok);
    assert.equal(sup.counter.open, 3);
  });

  it('a connector without connection limits is admitted in the process, with nothing sent to the supervisor', () => {
    const p = policy({ maxInboundConnection: 'unlimited', maxInboundConnectionPerSource: 'unlimited' });
    const sup = supervisor();
    const gate = new RemoteConnectionLimits(sup.channel());
    const r = gate.admit(session(p, '10.0.0.1'));
    assert.ok(!(r instanceof Promise) && r.ok);
    r.release();
    assert.deepEqual(sup.sent, []);
  });

  it('a connector with only a total limit still asks the supervisor', async () => {
    const p = policy({ maxInboundConnection: 1, maxInboundConnectionPerSource: 'unlimited' });
    const sup = supervisor();
    const one = new RemoteConnectionLimits(sup.channel());
    const two = new RemoteConnectionLimits(sup.channel());
    assert.ok((await one.admit(session(p, '10.0.0.1'))).ok);
    const second = await two.admit(session(p, '10.0.0.2'));
    assert.equal(second.ok, false);
    if (!second.ok) assert.equal(second.decision.reason.code, 'max-inbound-connection');
    assert.equal(sup.sent.length, 2);
  });
});
