/**
 * The `steeple server` commands that talk to a running server over its admin socket.
 * @module
 */
import type { Command } from 'commander';
import { bundleCommand } from './bundle.js';
import { entryCommand } from './entry.js';
import { federationCommand } from './federation.js';
import { jwtCommand } from './jwt-mint.js';
import { serverAgentCommand } from './server-agent.js';
import { healthcheckCommand } from './server-healthcheck.js';
import { tokenCommand } from './token-generate.js';
import { x509Command } from './x509-mint.js';

/** Adds entry, token, agent, bundle, x509, jwt, federation and healthcheck to `server`. */
export function registerServerAdminCommands(server: Command): void {
  server
    .addCommand(entryCommand())
    .addCommand(tokenCommand())
    .addCommand(serverAgentCommand())
    .addCommand(bundleCommand())
    .addCommand(x509Command())
    .addCommand(jwtCommand())
    .addCommand(federationCommand())
    .addCommand(healthcheckCommand());
}
