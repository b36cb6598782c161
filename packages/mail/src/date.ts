// RFC 5322 dates, as every header mailgw writes them (Received, Date, DSNs, banners).

// The last second formatted: a listener writes the same second into the banner and the
// Received header of many messages.
let lastSecond = NaN;
let lastText = '';

/** RFC 5322 date-time in UTC: "Tue, 01 Dec 2026 18:14:00 +0000". */
export function rfc5322Date(d: Date): string {
  const second = Math.floor(d.getTime() / 1000);
  if (second === lastSecond) return lastText;
  const text = d.toUTCString().replace(/GMT$/, '+0000').replace(/^(\w{3}), (\d) /, '$1, 0$2 ');
  lastSecond = second;
  lastText = text;
  return text;
}
