import { runSdkDemo } from './sdk-demo.js';

await runSdkDemo();
