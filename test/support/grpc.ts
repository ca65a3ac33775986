// A real gRPC server and client (@grpc/grpc-js) for the protocol tests. The service carries raw
// bytes (identity serialisers), so the tests need no .proto file and see exactly what crossed
// the wire: Unary, ServerStream, ClientStream and Bidi, with behaviour set per test.

import * as grpc from '@grpc/grpc-js';

const identity = (bytes: Buffer): Buffer => bytes;

function method(name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Buffer, Buffer> {
  return {
    path: `/test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
}

/** The test service: every method echoes what it is sent, unless a test's handler says otherwise. */
export const echoService = {
  unary: method('Unary', false, false),
  serverStream: method('ServerStream', false, true),
  clientStream: method('ClientStream', true, false),
  bidi: method('Bidi', true, true),
} as const satisfies grpc.ServiceDefinition;

export type EchoClient = grpc.Client & {
  unary(request: Buffer, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<Buffer>): grpc.ClientUnaryCall;
  serverStream(request: Buffer, metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<Buffer>;
  clientStream(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<Buffer>): grpc.ClientWritableStream<Buffer>;
  bidi(metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<Buffer, Buffer>;
};

const EchoClientConstructor = grpc.makeGenericClientConstructor(echoService, 'Echo') as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => EchoClient;

/** How the server answers Unary; echoes the request when absent. */
export type UnaryBehaviour = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => void;

export interface EchoServer {
  readonly port: number;
  /** `127.0.0.1:PORT`, a grpc-js target. */
  readonly address: string;
  /** Every Unary call's metadata, in the order they arrived. */
  readonly unaryCalls: grpc.Metadata[];
  /** Replaces how Unary answers. */
  onUnary(behaviour: UnaryBehaviour | undefined): void;
  stop(): Promise<void>;
}

/** Starts a grpc-js server with the echo service on a free loopback port. */
export async function startEchoServer(): Promise<EchoServer> {
  const server = new grpc.Server();
  const unaryCalls: grpc.Metadata[] = [];
  let unary: UnaryBehaviour | undefined;
  server.addService(echoService, {
    unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      unaryCalls.push(call.metadata);
      if (unary !== undefined) unary(call, callback);
      else callback(null, call.request);
    },
    // Echoes the request `count` times, the count in the request's first byte.
    serverStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const count = call.request[0] ?? 0;
      for (let i = 0; i < count; i++) call.write(Buffer.concat([Buffer.from([i]), call.request]));
      const trailer = new grpc.Metadata();
      trailer.set('x-stream-trailer', `sent-${count}`);
      call.end(trailer);
    },
    // Answers with the concatenation of every message.
    clientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const parts: Buffer[] = [];
      call.on('data', (part: Buffer) => parts.push(part));
      call.on('end', () => callback(null, Buffer.concat(parts)));
    },
    // Answers each message at once, reversed, so a client can wait for one before it sends the next.
    bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (part: Buffer) => call.write(Buffer.from(part).reverse()));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))),
  );
  return {
    port,
    address: `127.0.0.1:${port}`,
    unaryCalls,
    onUnary(behaviour) {
      unary = behaviour;
    },
    stop: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** A grpc-js client of the echo service at `target` (`host:port`), over cleartext HTTP/2. */
export function echoClient(target: string, options: grpc.ChannelOptions = {}): EchoClient {
  // No retries of grpc-js's own: what a test sees is what Breakwater did.
  return new EchoClientConstructor(target, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0, ...options });
}

/** What a unary call ended with: its response, or the status the client library reports. */
export interface UnaryResult {
  readonly response: Buffer | undefined;
  readonly code: grpc.status;
  readonly details: string;
  /** The response headers (initial metadata), or the trailers of a call that failed. */
  readonly metadata: grpc.Metadata;
  /** The trailing metadata. */
  readonly trailers: grpc.Metadata | undefined;
}

/** Makes a unary call and reports how it ended, success or not. */
export function callUnary(client: EchoClient, request: Buffer, options: { metadata?: grpc.Metadata; deadlineMs?: number } = {}): Promise<UnaryResult> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let trailers: grpc.Metadata | undefined;
    const callOptions: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
    const call = client.unary(request, options.metadata ?? new grpc.Metadata(), callOptions, (error, response) => {
      const metadata = error?.metadata ?? headers ?? new grpc.Metadata();
      resolve({ response, code: error?.code ?? grpc.status.OK, details: error?.details ?? '', metadata, trailers });
    });
    call.on('metadata', (metadata: grpc.Metadata) => (headers = metadata));
    call.on('status', (status: grpc.StatusObject) => (trailers = status.metadata));
  });
}

export { grpc };
