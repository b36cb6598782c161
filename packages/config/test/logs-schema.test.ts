// gateway.yaml `logs`: Exchange's retention defaults, sizes and durations as admins write them,
// 0 = no limit, and errors that name gateway.yaml and the key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT, GATEWAY, buildFrom, expectError } from './fixture.js';

const build = (logs?: unknown) => buildFrom({ ...GATEWAY, ...(logs === undefined ? {} : { logs }) }, { 'default.yaml': DEFAULT });
const MB = 1024 * 1024;
const DAY = 86_400_000;

describe('gateway.yaml logs', () => {
  it("defaults to Exchange's: tracking 30 days / 1000 MB, receive and send protocol logs 30 days / 250 MB, the agent log on, 7 days / 250 MB", () => {
    const r = build();
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.logs, { messageTrackingLogMaxAge: 30 * DAY, messageTrackingLogMaxDirectorySize: 1000 * MB, receiveProtocolLogMaxAge: 30 * DAY, receiveProtocolLogMaxDirectorySize: 250 * MB, sendProtocolLogMaxAge: 30 * DAY, sendProtocolLogMaxDirectorySize: 250 * MB, messageTrackingStreamMaxLength: 1_000_000, messageTrackingStreamMaxAge: 7 * DAY, agentLogEnabled: true, agentLogMaxAge: 7 * DAY, agentLogMaxDirectorySize: 250 * MB, agentLogStreamMaxLength: 1_000_000, agentLogStreamMaxAge: 7 * DAY });
  });

  it("takes Exchange's forms and 0 for no limit; unset keys keep their default", () => {
    const r = build({ messageTrackingLogMaxAge: '90.00:00:00', messageTrackingLogMaxDirectorySize: '2GB', receiveProtocolLogMaxAge: 0, messageTrackingStreamMaxLength: 0, messageTrackingStreamMaxAge: '2d', sendProtocolLogMaxDirectorySize: '1GB', agentLogEnabled: false, agentLogMaxAge: '14.00:00:00' });
    assert.ok(r.ok);
    assert.deepEqual(r.config.gateway.logs, { messageTrackingLogMaxAge: 90 * DAY, messageTrackingLogMaxDirectorySize: 2048 * MB, receiveProtocolLogMaxAge: 0, receiveProtocolLogMaxDirectorySize: 250 * MB, sendProtocolLogMaxAge: 30 * DAY, sendProtocolLogMaxDirectorySize: 1024 * MB, messageTrackingStreamMaxLength: 0, messageTrackingStreamMaxAge: 2 * DAY, agentLogEnabled: false, agentLogMaxAge: 14 * DAY, agentLogMaxDirectorySize: 250 * MB, agentLogStreamMaxLength: 1_000_000, agentLogStreamMaxAge: 7 * DAY });
  });

  it('refuses wrong values and unknown keys, naming the file and key', () => {
    expectError(build({ messageTrackingLogMaxAge: 'a month' }), 'gateway.yaml', 'logs.messageTrackingLogMaxAge', /not a duration/);
    expectError(build({ receiveProtocolLogMaxDirectorySize: '250 megs' }), 'gateway.yaml', 'logs.receiveProtocolLogMaxDirectorySize', /not a size/);
    expectError(build({ sendProtocolLogMaxAge: 'forever' }), 'gateway.yaml', 'logs.sendProtocolLogMaxAge', /not a duration/);
    expectError(build({ sendProtocolLogMaxDirectorySize: -5 }), 'gateway.yaml', 'logs.sendProtocolLogMaxDirectorySize', /./);
    expectError(build({ agentLogMaxDirectorySize: 'big' }), 'gateway.yaml', 'logs.agentLogMaxDirectorySize', /not a size/);
    expectError(build({ agentLogEnabled: 'yes' }), 'gateway.yaml', 'logs.agentLogEnabled', /./);
    expectError(build({ smtpSendLogMaxAge: '30d' }), 'gateway.yaml', 'logs.smtpSendLogMaxAge', /unknown key/);
    expectError(build({ messageTrackingStreamMaxLength: -1 }), 'gateway.yaml', 'logs.messageTrackingStreamMaxLength', /./);
    expectError(build({ messageTrackingStreamMaxAge: '10s' }), 'gateway.yaml', 'logs.messageTrackingStreamMaxAge', /./);
  });
});
