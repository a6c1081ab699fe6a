/**
 * SPIRE's filter flags of `agent list` and `agent count`.
 * @module
 */
import { create } from '@bufbuild/protobuf';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type AgentFilter, AgentFilterSchema } from '../gen/steeple/server/v1/agent_pb.js';
import { collect, oneOf, parseBooleanString, parseSelector } from './admin-command.js';
import { MATCH_WORDS, type MatchWord, matchBehaviorOf } from './entry-filter-flags.js';

export interface AgentFilterFlags {
  readonly attestationType?: string;
  readonly banned?: boolean;
  readonly canReattest?: boolean;
  readonly expiresBefore?: number;
  readonly selector?: string[];
  readonly matchSelectorsOn: MatchWord;
}

/** A time as Unix seconds, or anything `Date` reads (`2030-01-01`, `2030-01-01T12:00:00Z`). */
function parseTime(value: string): number {
  if (/^\d+$/.test(value)) return Number(value);
  const ms = Date.parse(value);
  if (Number.isNaN(ms))
    throw new InvalidArgumentError(`${JSON.stringify(value)} is not a time (use 2030-01-01T00:00:00Z or Unix seconds)`);
  return Math.floor(ms / 1000);
}

export function addAgentFilterOptions(command: Command): Command {
  return command
    .option('--attestationType <type>', 'only agents attested this way (join_token, x509pop, ...)')
    .option('--banned <true|false>', 'only banned (true) or not banned (false) agents', parseBooleanString)
    .option('--canReattest <true|false>', 'only agents that can (true) or cannot (false) re-attest', parseBooleanString)
    .option('--expiresBefore <time>', 'only agents whose SVID expires before this time', parseTime)
    .option('--selector <type:value>', 'only agents with these node selectors; repeat for several', collect)
    .addOption(
      new Option('--matchSelectorsOn <how>', 'how -selector matches: exact, subset, superset or any')
        .argParser(oneOf(MATCH_WORDS))
        .default('superset'),
    );
}

export function agentFilterFromFlags(flags: AgentFilterFlags): AgentFilter {
  const selectors = (flags.selector ?? []).map(parseSelector);
  return create(AgentFilterSchema, {
    ...(flags.attestationType !== undefined ? { byAttestationType: flags.attestationType } : {}),
    ...(flags.banned !== undefined ? { byBanned: flags.banned } : {}),
    ...(flags.canReattest !== undefined ? { byCanReattest: flags.canReattest } : {}),
    ...(flags.expiresBefore !== undefined ? { byExpiresBefore: BigInt(flags.expiresBefore) } : {}),
    ...(selectors.length > 0 ? { bySelectors: { selectors, match: matchBehaviorOf(flags.matchSelectorsOn) } } : {}),
  });
}
