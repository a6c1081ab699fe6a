/**
 * SPIRE's filter flags of `entry show` and `entry count`. Selector and federatesWith filters
 * match as `-matchSelectorsOn` / `-matchFederatesWithOn` say (default superset, as in SPIRE).
 * @module
 */
import { create } from '@bufbuild/protobuf';
import { type Command, Option } from 'commander';
import { type EntryFilter, EntryFilterSchema, MatchBehavior } from '../gen/steeple/server/v1/entry_pb.js';
import { collect, oneOf, parseSelector } from './admin-command.js';

export const MATCH_WORDS = ['exact', 'subset', 'superset', 'any'] as const;
export type MatchWord = (typeof MATCH_WORDS)[number];

export function matchBehaviorOf(word: MatchWord): MatchBehavior {
  switch (word) {
    case 'exact':
      return MatchBehavior.EXACT;
    case 'subset':
      return MatchBehavior.SUBSET;
    case 'superset':
      return MatchBehavior.SUPERSET;
    case 'any':
      return MatchBehavior.ANY;
  }
}

export interface EntryFilterFlags {
  readonly spiffeID?: string;
  readonly parentID?: string;
  readonly selector?: string[];
  readonly federatesWith?: string[];
  readonly matchSelectorsOn: MatchWord;
  readonly matchFederatesWithOn: MatchWord;
  readonly downstream?: boolean;
  readonly hint?: string;
}

export function addEntryFilterOptions(command: Command): Command {
  return command
    .option('--spiffeID <id>', 'only entries with this SPIFFE ID')
    .option('--parentID <id>', 'only entries with this parent ID')
    .option('--selector <type:value>', 'only entries with these selectors; repeat for several', collect)
    .option('--federatesWith <td>', 'only entries federating with these trust domains; repeat for several', collect)
    .addOption(
      new Option('--matchSelectorsOn <how>', 'how -selector matches: exact, subset, superset or any')
        .argParser(oneOf(MATCH_WORDS))
        .default('superset'),
    )
    .addOption(
      new Option('--matchFederatesWithOn <how>', 'how -federatesWith matches: exact, subset, superset or any')
        .argParser(oneOf(MATCH_WORDS))
        .default('superset'),
    )
    .option('--downstream', 'only downstream entries')
    .option('--hint <hint>', 'only entries with this hint');
}

export function entryFilterFromFlags(flags: EntryFilterFlags): EntryFilter {
  const selectors = (flags.selector ?? []).map(parseSelector);
  const federatesWith = flags.federatesWith ?? [];
  return create(EntryFilterSchema, {
    ...(flags.spiffeID !== undefined ? { bySpiffeId: flags.spiffeID } : {}),
    ...(flags.parentID !== undefined ? { byParentId: flags.parentID } : {}),
    ...(selectors.length > 0 ? { bySelectors: { selectors, match: matchBehaviorOf(flags.matchSelectorsOn) } } : {}),
    ...(federatesWith.length > 0
      ? { byFederatesWith: { trustDomains: federatesWith, match: matchBehaviorOf(flags.matchFederatesWithOn) } }
      : {}),
    ...(flags.downstream === true ? { byDownstream: true } : {}),
    ...(flags.hint !== undefined ? { byHint: flags.hint } : {}),
  });
}
