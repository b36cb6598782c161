// One "listener process" of tls-material.test.ts: makes (or waits for) the self-signed
// certificate in argv[2], checks that key and certificate match, prints whether it made them.
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { pino } from 'pino';
import { ensureSelfSigned } from '../../src/tls-material.js';

const r = await ensureSelfSigned(process.argv[2]!, 'race.contoso.test', pino({ level: 'silent' }), 'Default');
tls.createSecureContext({ key: readFileSync(r.keyFile), cert: readFileSync(r.certFile) });
process.stdout.write(String(r.created));
