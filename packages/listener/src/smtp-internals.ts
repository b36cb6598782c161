// The one place that knows mailgw leans on smtp-server internals. smtp-server is written for
// one behaviour per server; mailgw serves several connectors on one socket, each with its own
// FQDN, limits, TLS certificate, greeting delay and Exchange reply texts. Rather than patching
// the library's prototypes (which would change every SMTPServer in the process), the listener
// subclasses SMTPServer and SMTPConnection and overrides these members, all public in the
// package's own .d.ts but documented as internal:
//
//   SMTPServer:     connect(), _expectsProxyHeader(), _pendingSockets, server (net.Server)
//   SMTPConnection: init() (the hard-coded 100 ms early-talker wait before the greeting,
//                   replaced by the connector's greetingDelay), connectionReady(),
//                   _setListeners(), send(), _sendGreeting(), _onCommand(), _createParser(),
//                   _armTimeout(), _resetSession(), _redactCredentials(), _parseAddressCommand(),
//                   upgrade(), _server,
//                   handler_EHLO/HELO/STARTTLS/AUTH/DATA/NOOP/HELP/VRFY
//   SMTPStream:     _feedDataStream() on each connection's parser (fast-data-mode.ts), with
//                   the state it uses: _dataStream, _lastBytes, _atDataStart,
//                   _countDataBytes(), _endDataMode()
//
// These were read in smtp-server 3.21.6 (dist/esm/smtp-connection.js, the ESM copy that
// `import 'smtp-server'` loads; the CJS copy under dist/cjs is a different module and is not
// touched). The dependency is pinned to that exact version and this module refuses to load
// with another one: upgrading means re-reading those methods and running test/listener.
import { createRequire } from 'node:module';

export const SMTP_SERVER_VERSION = '3.21.6';

const require = createRequire(import.meta.url);
const installed = (require('smtp-server/package.json') as { version: string }).version;
if (installed !== SMTP_SERVER_VERSION) {
  throw new Error(
    `@mailgw/listener overrides internals of smtp-server ${SMTP_SERVER_VERSION} (see packages/listener/src/smtp-internals.ts) ` +
      `but ${installed} is installed: review the overrides against the new version, then update SMTP_SERVER_VERSION and the pinned dependency`,
  );
}
