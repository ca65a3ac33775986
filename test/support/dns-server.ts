// A DNS server on loopback that answers A and AAAA queries from records the test sets, so
// discovery is tested against real DNS traffic: node:dns's resolver sends it real queries.
// dns-packet encodes and decodes the messages (docs/decisions/0006-endpoint-discovery.md).

import { createSocket, type RemoteInfo } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import dnsPacket from 'dns-packet';

export interface DnsServer {
  /** `127.0.0.1:PORT`, for `dns.servers`. */
  readonly address: string;
  /** Queries received so far, as `TYPE name`. */
  readonly queries: string[];
  /** Sets the addresses `name` resolves to (IPv4 as A records, IPv6 as AAAA); none: NXDOMAIN. */
  setRecords(name: string, addresses: readonly string[]): void;
  /** true: every query gets SERVFAIL, as from a DNS server that cannot answer. */
  fail(failing: boolean): void;
  close(): Promise<void>;
}

const SERVFAIL = 2;
const NXDOMAIN = 3;

export async function startDnsServer(): Promise<DnsServer> {
  const records = new Map<string, readonly string[]>();
  const queries: string[] = [];
  let failing = false;
  const socket = createSocket('udp4');
  socket.on('message', (message: Buffer, peer: RemoteInfo) => {
    const query = dnsPacket.decode(message);
    const question = query.questions?.[0];
    if (question === undefined) return;
    queries.push(`${question.type} ${question.name}`);
    const addresses = records.get(question.name.toLowerCase());
    const wanted = addresses?.filter((address) => (question.type === 'AAAA' ? address.includes(':') : question.type === 'A' && !address.includes(':'))) ?? [];
    const rcode = failing ? SERVFAIL : addresses === undefined ? NXDOMAIN : 0;
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED | rcode,
      questions: [question],
      answers: rcode !== 0 ? [] : wanted.map((data) => ({ type: question.type as 'A' | 'AAAA', name: question.name, ttl: 5, class: 'IN' as const, data })),
    });
    socket.send(reply, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    queries,
    setRecords(name, addresses) {
      records.set(name.toLowerCase(), addresses);
    },
    fail(next) {
      failing = next;
    },
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
