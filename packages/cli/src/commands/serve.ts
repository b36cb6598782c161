// mailgw start / listen: placeholder until the listener package lands.
export async function runServe(_opts: { config: string; connectors?: string | undefined; workers: boolean }): Promise<number> {
  process.stderr.write('mailgw: start/listen are not available yet\n');
  return 1;
}
