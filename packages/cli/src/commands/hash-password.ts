// mailgw hash-password: read a password on stdin, print a PHC scrypt hash for gateway.yaml.
import { hashPassword } from '@mailgw/config';

export async function runHashPassword(stdin: NodeJS.ReadableStream, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<number> {
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)));
  const password = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  if (password.length === 0) {
    err.write("mailgw hash-password: no password on stdin (try: printf '%s' 'secret' | mailgw hash-password)\n");
    return 1;
  }
  out.write(`${await hashPassword(password)}\n`);
  return 0;
}
