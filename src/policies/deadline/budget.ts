// The caller's side of a deadline: the budget headers it may send, parsed into milliseconds.

const grpcUnitsMs: Readonly<Record<string, number>> = {
  H: 3_600_000,
  M: 60_000,
  S: 1_000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/**
 * Parses a gRPC `grpc-timeout` value: 1 to 8 ASCII digits and a unit (H M S m u n), as the
 * gRPC over HTTP/2 spec defines it. Returns milliseconds (fractional below 1 ms), or
 * undefined for a malformed value, which gRPC servers ignore too.
 */
export function parseGrpcTimeout(value: string): number | undefined {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value.trim());
  if (match === null) return undefined;
  return Number(match[1]) * grpcUnitsMs[match[2]!]!;
}

/** Parses a budget in milliseconds (`x-request-timeout-ms`, `x-envoy-expected-rq-timeout-ms`). */
export function parseMillis(value: string): number | undefined {
  const trimmed = value.trim();
  if (!/^\d+(\.\d+)?$/.test(trimmed)) return undefined;
  return Number(trimmed);
}

/** One header's budget: `grpc-timeout` in its own format, any other header in milliseconds. */
export function parseBudgetHeader(name: string, value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const first = Array.isArray(value) ? value[0] : value;
  if (first === undefined) return undefined;
  return name === 'grpc-timeout' ? parseGrpcTimeout(first) : parseMillis(first);
}

/**
 * The caller's budget: the smallest valid value among the `accept` headers, capped at
 * `maxInboundMs`; undefined when the caller sent none.
 */
export function callerBudgetMs(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  accept: readonly string[],
  maxInboundMs: number,
): number | undefined {
  let budget: number | undefined;
  for (const name of accept) {
    const value = parseBudgetHeader(name, headers[name]);
    if (value !== undefined && (budget === undefined || value < budget)) budget = value;
  }
  return budget === undefined ? undefined : Math.min(budget, maxInboundMs);
}

