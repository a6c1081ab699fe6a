/**
 * What every admin service shares: the resolved dependencies, the audit log line of a change,
 * and the wrapper that turns every error into a proper status and counts every call.
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { DescService } from '@bufbuild/protobuf';
import { Code, type HandlerContext, type ServiceImpl } from '@connectrpc/connect';
import { systemClock } from '@steeple/spiffe';
import type { Logger } from '../../../common/logger.js';
import type { AttestedAgent } from '../../datastore/index.js';
import { adminCallerKey } from './admin-caller.js';
import type { AdminChange, AdminDeps } from './admin-deps.js';
import { toConnectError } from './grpc-status.js';

/** AdminDeps with every default filled in. */
export interface AdminContext extends Omit<AdminDeps, 'clock' | 'canReattest' | 'generateJoinToken' | 'onChange'> {
  readonly clock: NonNullable<AdminDeps['clock']>;
  readonly canReattest: (agent: AttestedAgent) => boolean;
  readonly generateJoinToken: () => string;
  /** Epoch seconds now. */
  nowSeconds(): number;
  /** Tells listeners about a change; a throwing listener is logged, never fails the call. */
  changed(what: AdminChange): void;
  /** Writes the info line of a successful change, with the caller. Never pass secrets. */
  audit(ctx: HandlerContext, fields: Record<string, unknown>, message: string): void;
}

export function resolveAdminContext(deps: AdminDeps): AdminContext {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger;
  return {
    ...deps,
    clock,
    canReattest: deps.canReattest ?? ((agent) => agent.attestationType !== 'join_token'),
    generateJoinToken: deps.generateJoinToken ?? (() => randomUUID()),
    nowSeconds: () => Math.floor(clock.now().getTime() / 1000),
    changed(what) {
      try {
        deps.onChange?.(what);
      } catch (err) {
        logger.warn({ err, what }, 'admin change listener failed');
      }
    },
    audit(ctx, fields, message) {
      logger.info(
        { rpc: `${ctx.method.parent.name}.${ctx.method.name}`, caller: ctx.values.get(adminCallerKey), ...fields },
        message,
      );
    },
  };
}

const READ_ONLY = /^(Get|List|Count|Check)/;

/**
 * Wraps the (unary) methods of a service implementation: errors become ConnectErrors with the
 * mapped status and no stack trace, refused changes are logged with the caller, and calls are
 * counted by method and status when metrics are configured.
 */
export function guardService<S extends DescService>(
  service: S,
  impl: Partial<ServiceImpl<S>>,
  context: Pick<AdminContext, 'logger' | 'metrics'>,
): Partial<ServiceImpl<S>> {
  const logger: Logger = context.logger;
  const calls = context.metrics?.counter({
    name: 'admin_api_calls_total',
    help: 'Admin API calls by method and gRPC status code',
    labelNames: ['method', 'code'],
  });
  const latency = context.metrics?.histogram({
    name: 'admin_api_call_duration_seconds',
    help: 'Admin API call latency by method',
    labelNames: ['method'],
  });
  const wrapped: Record<string, unknown> = {};
  for (const [localName, fn] of Object.entries(impl)) {
    const method = service.method[localName];
    if (method === undefined || typeof fn !== 'function') continue;
    const rpc = `${service.name}.${method.name}`;
    const mutating = !READ_ONLY.test(method.name);
    wrapped[localName] = async (req: unknown, ctx: HandlerContext) => {
      const stop = latency?.startTimer({ method: rpc });
      try {
        const res = await (fn as (r: unknown, c: HandlerContext) => Promise<unknown>).call(impl, req, ctx);
        calls?.inc({ method: rpc, code: 'OK' });
        return res;
      } catch (err) {
        const error = toConnectError(err, logger, rpc);
        calls?.inc({ method: rpc, code: Code[error.code] });
        if (mutating) {
          logger.info(
            { rpc, caller: ctx.values.get(adminCallerKey), code: Code[error.code], reason: error.rawMessage },
            'admin change refused',
          );
        }
        throw error;
      } finally {
        stop?.();
      }
    };
  }
  return wrapped as Partial<ServiceImpl<S>>;
}
