/** `npm run demo:agent`: one trust domain, a server, an agent and SDK workloads (see local-demo.ts). */
import { runLocalDemo } from './local-demo.js';

try {
  await runLocalDemo();
} catch (err) {
  console.error(`demo failed: ${(err as Error).message}`);
  process.exitCode = 1;
}
