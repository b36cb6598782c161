// The few things the worker reads from a message: its header section (for DSNs with RET=HDRS)
// and single header values (Subject, Message-ID for logs and DSNs). No MIME parsing.

/** Length of the header section including the blank line that ends it (whole body if none). */
export function headerSectionLength(body: Buffer): number {
  for (let i = 0; i < body.length; i++) {
    if (body[i] !== 0x0a) continue;
    if (body[i + 1] === 0x0a) return i + 2;
    if (body[i + 1] === 0x0d && body[i + 2] === 0x0a) return i + 3;
  }
  return body.length;
}

export function headerSection(body: Buffer): Buffer {
  return body.subarray(0, headerSectionLength(body));
}

/** The unfolded value of the first header `name` (case-insensitive), or null. */
export function headerValue(headers: Buffer | string, name: string): string | null {
  const text = typeof headers === 'string' ? headers : headers.toString('latin1');
  const lines = text.split(/\r?\n/);
  const prefix = `${name.toLowerCase()}:`;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') break;
    if (!line.toLowerCase().startsWith(prefix)) continue;
    let value = line.slice(prefix.length);
    while (i + 1 < lines.length && /^[ \t]/.test(lines[i + 1]!)) value += ' ' + lines[++i]!.trim();
    // Header bytes are usually ASCII; decode UTF-8 (RFC 6532) when it is valid.
    const utf8 = Buffer.from(value, 'latin1').toString('utf8');
    return (utf8.includes('\uFFFD') ? value : utf8).trim();
  }
  return null;
}

/** The line ending the message uses (for headers mailgw adds): CRLF unless its first line ends in LF. */
export function lineEnding(body: Buffer): '\r\n' | '\n' {
  const lf = body.indexOf(0x0a);
  return lf > 0 && body[lf - 1] !== 0x0d ? '\n' : '\r\n';
}
