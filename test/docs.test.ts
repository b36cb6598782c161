// The README is the admin's reference: it must list every key the schemas accept.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { connectorShape, gatewayShape, sendConnectorShape } from '@mailgw/config';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

it('README documents every connector and gateway key', () => {
  const missing = [...Object.keys(connectorShape), ...Object.keys(gatewayShape)].filter((k) => !readme.includes(`| \`${k}\` |`));
  assert.deepEqual(missing, [], 'regenerate with: node --conditions=mailgw-src --import tsx scripts/config-reference.ts');
});

it('README documents every send connector key in its own table', () => {
  const at = readme.indexOf('### Send connector files (send-connectors.d/*.yaml)');
  assert.ok(at >= 0, 'README has the send connector reference');
  const section = readme.slice(at, readme.indexOf('\n## ', at));
  const missing = Object.keys(sendConnectorShape).filter((k) => !section.includes(`| \`${k}\` |`));
  assert.deepEqual(missing, [], 'regenerate with: node --conditions=mailgw-src --import tsx scripts/config-reference.ts');
});

it('README gives the two commands', () => {
  assert.match(readme, /npm start/);
  assert.match(readme, /npm test/);
});
