// RFC 2047 encoded words in unstructured fields, decoded for the transport rules to read.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { decodeEncodedWords } from '../src/index.js';

it('decodes Q and B words in any charset Node knows; white space between two words goes, other text stays', () => {
  assert.equal(decodeEncodedWords('=?utf-8?q?caf=C3=A9_au_lait?='), 'café au lait');
  assert.equal(decodeEncodedWords('=?UTF-8?B?R3LDvMOfZQ==?= =?UTF-8?B?IGF1cyBLw7Zsbg==?=!'), 'Grüße aus Köln!');
  assert.equal(decodeEncodedWords('Re: =?iso-8859-1?Q?Gr=FC=DFe?= von mir'), 'Re: Grüße von mir');
  assert.equal(decodeEncodedWords('=?utf-8*de?q?Stra=C3=9Fe?='), 'Straße', 'RFC 2231 language suffix');
  assert.equal(decodeEncodedWords('plain text, no words'), 'plain text, no words');
});

it('leaves what it cannot decode as written', () => {
  for (const v of ['=?no-such-charset?q?x?=', '=?utf-8?x?abc?=', '=?utf-8?b?not*base64?=', '=?utf-8?q?unterminated', '=??q?x?=']) assert.equal(decodeEncodedWords(v), v, v);
  assert.equal(decodeEncodedWords('=?no-such-charset?q?x?= =?utf-8?q?ok?='), '=?no-such-charset?q?x?= ok');
});
