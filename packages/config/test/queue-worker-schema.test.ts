// gateway.yaml `queue`: the worker's sizing keys, their defaults and the errors for bad values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT, GATEWAY, buildFrom, expectError } from './fixture.js';

const build = (queue?: unknown) => buildFrom({ ...GATEWAY, ...(queue === undefined ? {} : { queue }) }, { 'default.yaml': DEFAULT });
const MB = 1024 * 1024;

describe('gateway.yaml queue: worker sizing', () => {
  it('defaults to 100 deliveries at once per worker process, holding at most 256 MB of messages', () => {
    const r = build();
    assert.ok(r.ok);
    assert.equal(r.config.gateway.queue.workerConcurrency, 100);
    assert.equal(r.config.gateway.queue.workerMessageBytes, 256 * MB);
    // Exchange's MaxPerDomainOutboundConnections and Postfix's destination concurrency: 20.
    assert.equal(r.config.gateway.queue.maxConnectionsPerDestination, 20);
  });

  it('takes sizes as admins write them; unset keys keep their default', () => {
    const r = build({ workerMessageBytes: '1GB', maxConnectionsPerDestination: 40 });
    assert.ok(r.ok);
    assert.equal(r.config.gateway.queue.workerMessageBytes, 1024 * MB);
    assert.equal(r.config.gateway.queue.workerConcurrency, 100);
    assert.equal(r.config.gateway.queue.maxConnectionsPerDestination, 40);
  });

  it('refuses wrong values, naming the file and key', () => {
    expectError(build({ workerMessageBytes: '10KB' }), 'gateway.yaml', 'queue.workerMessageBytes', /out of range/);
    expectError(build({ workerMessageBytes: 'plenty' }), 'gateway.yaml', 'queue.workerMessageBytes', /not a size/);
    expectError(build({ workerConcurrency: 0 }), 'gateway.yaml', 'queue.workerConcurrency', /./);
  });
});
