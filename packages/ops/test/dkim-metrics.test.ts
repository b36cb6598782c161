// mailgw_dkim_messages_total and mailgw_arc_seals_total: what the workers of a process report about DKIM signing and ARC sealing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayMetrics } from '../src/metrics.js';

test('observeDkim counts signed and failed (sent unsigned) messages', async () => {
  const m = new GatewayMetrics({ processMetrics: false });
  m.observeDkim('signed');
  m.observeDkim('signed');
  m.observeDkim('failed');
  const text = await m.registry.metrics();
  assert.match(text, /^mailgw_dkim_messages_total\{result="signed"\} 2$/m);
  assert.match(text, /^mailgw_dkim_messages_total\{result="failed"\} 1$/m);
});

test('observeArc counts sealed and failed (sent unsealed) copies', async () => {
  const m = new GatewayMetrics({ processMetrics: false });
  m.observeArc('sealed');
  m.observeArc('failed');
  m.observeArc('failed');
  const text = await m.registry.metrics();
  assert.match(text, /^mailgw_arc_seals_total\{result="sealed"\} 1$/m);
  assert.match(text, /^mailgw_arc_seals_total\{result="failed"\} 2$/m);
});
