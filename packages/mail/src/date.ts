// RFC 5322 dates, as every header mailgw writes them (Received, Date, DSNs, banners).

/** RFC 5322 date-time in UTC: "Tue, 01 Dec 2026 18:14:00 +0000". */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000').replace(/^(\w{3}), (\d) /, '$1, 0$2 ');
}
