// Exchange's Send As permission (Add-ADPermission -ExtendedRights Send-As), as Active Directory
// stores it: an access-allowed object ACE for the Send-As extended right in the DACL of the
// object whose address is sent as (a shared mailbox, a group, another user). Pure: the
// security descriptor's bytes (MS-DTYP 2.4.6, self-relative) and the user's SIDs in, a verdict
// and its reason out; @mailgw/directory reads them.
import { formatSid, parseSid } from './directory.js';

/** The Send-As extended right (rightsGuid of CN=Send-As in the configuration partition). */
export const SEND_AS_RIGHT_GUID = 'ab721a54-1e2f-11d0-9819-00aa0040529b';

/** ADS_RIGHT_DS_CONTROL_ACCESS: the access mask bit an extended right is granted by. */
const CONTROL_ACCESS = 0x100;
const ACE_ALLOWED = 0x00;
const ACE_DENIED = 0x01;
const ACE_ALLOWED_OBJECT = 0x05;
const ACE_DENIED_OBJECT = 0x06;
/** An ACE only for objects below this one. */
const INHERIT_ONLY = 0x08;
const OBJECT_TYPE_PRESENT = 0x1;
const INHERITED_OBJECT_TYPE_PRESENT = 0x2;
/** Self-relative descriptor with a DACL (MS-DTYP 2.4.6 Control: SE_DACL_PRESENT). */
const SE_DACL_PRESENT = 0x0004;

/** One ACE of a DACL, as far as Send As needs it. */
export interface Ace {
  readonly allow: boolean;
  readonly mask: number;
  /** The object type GUID of an object ACE (lower case, as written in AD's schema), else null. */
  readonly objectType: string | null;
  readonly sid: string;
  readonly inheritOnly: boolean;
}

/** A GUID's 16 bytes in the string form (the first three fields little-endian, MS-DTYP 2.3.4.2). */
export function formatGuid(b: Uint8Array): string {
  const hex = (from: number, to: number, reverse: boolean) => {
    const part = [...b.subarray(from, to)];
    return (reverse ? part.reverse() : part).map((x) => x.toString(16).padStart(2, '0')).join('');
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`;
}

/** The DACL of a self-relative security descriptor (nTSecurityDescriptor), or why it cannot be read. */
export function parseDacl(sd: Uint8Array): { readonly aces: readonly Ace[] } | { readonly error: string } {
  const view = new DataView(sd.buffer, sd.byteOffset, sd.byteLength);
  if (sd.length < 20) return { error: `${sd.length} bytes, a security descriptor has at least 20` };
  if (sd[0] !== 1) return { error: `revision ${sd[0]}, only revision 1 exists` };
  const control = view.getUint16(2, true);
  const daclOffset = view.getUint32(16, true);
  if ((control & SE_DACL_PRESENT) === 0 || daclOffset === 0) return { aces: [] };
  if (daclOffset + 8 > sd.length) return { error: `the DACL at offset ${daclOffset} is past the end (${sd.length} bytes)` };
  const aclSize = view.getUint16(daclOffset + 2, true);
  const count = view.getUint16(daclOffset + 4, true);
  const end = daclOffset + aclSize;
  if (end > sd.length) return { error: `the DACL (${aclSize} bytes at ${daclOffset}) is past the end (${sd.length} bytes)` };
  const aces: Ace[] = [];
  let o = daclOffset + 8;
  for (let i = 0; i < count; i++) {
    if (o + 4 > end) return { error: `ACE ${i} starts past the DACL's end` };
    const type = sd[o]!;
    const flags = sd[o + 1]!;
    const size = view.getUint16(o + 2, true);
    if (size < 8 || o + size > end) return { error: `ACE ${i} has a size of ${size} bytes, out of the DACL` };
    const ace = sd.subarray(o, o + size);
    o += size;
    // Other ACE types (audit, callback, …) grant nothing here.
    if (type !== ACE_ALLOWED && type !== ACE_DENIED && type !== ACE_ALLOWED_OBJECT && type !== ACE_DENIED_OBJECT) continue;
    const mask = new DataView(ace.buffer, ace.byteOffset, ace.byteLength).getUint32(4, true);
    let p = 8;
    let objectType: string | null = null;
    if (type === ACE_ALLOWED_OBJECT || type === ACE_DENIED_OBJECT) {
      if (size < 12) return { error: `object ACE ${i} is too short` };
      const objectFlags = new DataView(ace.buffer, ace.byteOffset, ace.byteLength).getUint32(8, true);
      p = 12;
      if (objectFlags & OBJECT_TYPE_PRESENT) {
        if (p + 16 > size) return { error: `object ACE ${i} is too short for its object type` };
        objectType = formatGuid(ace.subarray(p, p + 16));
        p += 16;
      }
      if (objectFlags & INHERITED_OBJECT_TYPE_PRESENT) p += 16;
    }
    if (p + 8 > size) return { error: `ACE ${i} is too short for its SID` };
    const sidLength = 8 + 4 * ace[p + 1]!;
    if (p + sidLength > size) return { error: `ACE ${i}'s SID runs past the ACE` };
    const parsed = parseSid(ace.subarray(p, p + sidLength));
    if (!parsed.sid) return { error: `ACE ${i}: ${parsed.why}` };
    aces.push({ allow: type === ACE_ALLOWED || type === ACE_ALLOWED_OBJECT, mask, objectType, sid: formatSid(parsed.sid), inheritOnly: (flags & INHERIT_ONLY) !== 0 });
  }
  return { aces };
}

/**
 * Whether the SIDs of a logged-on user (its own, its groups' from tokenGroups) hold Send As on an
 * object, by its DACL: only ACEs for the Send-As right itself count (an object ACE with
 * CONTROL_ACCESS and the Send-As GUID), as Exchange's Add-ADPermission writes them; full control
 * or all extended rights at once do not (what an administrator holds over every object is not a
 * grant to send as it). A deny for any of the SIDs wins over an allow; ACEs only for objects
 * below (inherit-only) do not apply to this one.
 */
export function sendAsDecision(aces: readonly Ace[], sids: readonly string[]): { readonly granted: boolean; readonly why: string } {
  const mine = new Set(sids.map((s) => s.toUpperCase()));
  const sendAs = aces.filter((a) => !a.inheritOnly && a.objectType === SEND_AS_RIGHT_GUID && (a.mask & CONTROL_ACCESS) !== 0 && mine.has(a.sid.toUpperCase()));
  const denied = sendAs.find((a) => !a.allow);
  if (denied) return { granted: false, why: `Send As is denied to ${denied.sid}` };
  const allowed = sendAs.find((a) => a.allow);
  if (allowed) return { granted: true, why: `Send As is granted to ${allowed.sid}` };
  return { granted: false, why: `no Send As entry for the user's ${sids.length} SIDs` };
}

/** What the directory said about sending as an address (the listener asks it when the policy would refuse the sender). */
export type SendAsAnswer =
  | { readonly kind: 'granted'; readonly dn: string; readonly why: string }
  | { readonly kind: 'not-granted'; readonly dn: string | null; readonly why: string }
  | { readonly kind: 'unavailable'; readonly why: string };
