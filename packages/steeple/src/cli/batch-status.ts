/**
 * Batch answers of the admin API carry one status per item; this turns the refused ones into
 * the command's failure.
 * @module
 */
import { Code } from '@connectrpc/connect';
import type { Status } from '../gen/steeple/types/v1/status_pb.js';
import { CliError } from './admin-command.js';

/** `NotFound`, `AlreadyExists`, … for a status code number. */
export function codeName(code: number): string {
  return code === 0 ? 'OK' : (Code[code] ?? `code ${code}`);
}

export function isOk(status: Status | undefined): boolean {
  return (status?.code ?? 0) === 0;
}

/** `code: AlreadyExists, msg: "…"`, as SPIRE prints a refused item. */
export function describeStatus(status: Status | undefined): string {
  return `code: ${codeName(status?.code ?? 0)}, msg: ${JSON.stringify(status?.message ?? '')}`;
}

/** Throws when any item was refused: `1 of 3 entries not created: <first reason> (<Code>)`. */
export function failIfRefused(statuses: readonly (Status | undefined)[], what: string): void {
  const refused = statuses.filter((s) => !isOk(s));
  const first = refused[0];
  if (first === undefined) return;
  throw new CliError(`${refused.length} of ${statuses.length} ${what}: ${first.message} (${codeName(first.code)})`);
}
