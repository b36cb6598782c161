// The one place that lists every smtp-server internal @mailgw/listener relies on, and checks at
// load (every module that overrides one imports this) that the installed version is the one
// they were read in. smtp-server is written for
// one behaviour per server; mailgw serves several connectors on one socket, each with its own
// FQDN, limits, TLS certificate, greeting delay and Exchange reply texts. Rather than patching
// the library's prototypes (which would change every SMTPServer in the process), the listener
// subclasses SMTPServer and SMTPConnection and overrides these members, all public in the
// package's own .d.ts but documented as internal:
//
//   SMTPServer:     connect(), _expectsProxyHeader(), _handleProxy() (the session id,
//                   session-id.ts, and the PROXY header, versions 1 and 2, read by mailgw;
//                   its callback's socket options: id, remoteAddress, remotePort)
//                   (gateway-server.ts), _onError(),
//                   _onClientConnect() (called from connect()), _pendingSockets
//                   (start-listeners.ts, closed at shutdown), server (net.Server)
//   SMTPConnection: init() (the hard-coded 100 ms early-talker wait before the greeting,
//                   replaced by the connector's greetingDelay), connectionReady(),
//                   _setListeners(), send(), _sendGreeting(), _onCommand(), _createParser(),
//                   _armTimeout(), _resetSession(), _redactCredentials(), _parseAddressCommand(),
//                   upgrade(), _server (per connection a view of the server: its secureContext,
//                   and for domain security its options' requestCert and rejectUnauthorized,
//                   which createTLSSocketOptions reads, and the TLS socket's authorized and
//                   authorizationError that verifyPeerCertificate sets),
//                   handler_EHLO/HELO/STARTTLS/AUTH/DATA/NOOP/HELP/VRFY/RSET/MAIL/RCPT
//                   (MAIL/RCPT: the policy judges the raw line's parameters, then the library's
//                   handler runs; session.envelope.mailFrom tells which sequence error applies),
//                   handler_QUIT (the library's, then the socket destroyed once the 221 has
//                   left: net's destroySoon)
//                   _validateMailParams() (BODY=BINARYMIME, judged by the policy, hidden
//                   from the library's 7BIT/8BITMIME check; _applyMailParams then records
//                   it as envelope.bodyType 'binarymime')
//                   handler_BDAT is no override: a method the library finds by name
//                   (_getHandler: this['handler_' + command]) as it finds its own handlers
//   SMTPStream:     for BDAT (bdat.ts): _dataMode set and cleared, _remainder cleared, an own
//                   _feedDataStream that counts octets while a chunk is read, _write() to hand
//                   back what followed the chunk; and
//                   _feedDataStream() on each connection's parser (fast-data-mode.ts), with
//                   the state it uses: _dataStream, _lastBytes, _atDataStart,
//                   _countDataBytes(), _endDataMode()
//
// Every override is per instance: subclasses (GatewayServer, GatewayConnection) and, for
// _feedDataStream, an own property of each parser GatewayConnection creates. No prototype of
// the library is changed, so a plain SMTPServer in the same process behaves as published
// (packages/listener/test/library-overrides.test.ts).
//
// These were read in smtp-server 3.21.6 (dist/esm/smtp-connection.js, the ESM copy that
// `import 'smtp-server'` loads; the CJS copy under dist/cjs is a different module and is not
// touched). The dependency is pinned to that exact version in package.json and this module
// refuses to load with another one: upgrading means re-reading those methods and running
// test/listener, then changing both pins.
import { checkPinnedVersion, installedVersion } from '@mailgw/queue';

export const SMTP_SERVER_VERSION = '3.21.6';

checkPinnedVersion('smtp-server', SMTP_SERVER_VERSION, installedVersion('smtp-server', import.meta.url), 'packages/listener/src/library-overrides.ts');
