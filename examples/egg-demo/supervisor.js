// A supervisor in the manner of PM2's God Daemon: same process title, and it
// copies its child's output to a log file.
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

process.title = 'PM2 v0.0.0-demo: God Daemon (' + (process.env.DEMO_HOME || '/tmp') + ')';
const log = fs.openSync(process.env.DEMO_SUPERVISOR_LOG || '/dev/null', 'a');
const child = spawn(process.execPath, [path.join(__dirname, 'src', 'index.js')], {
  cwd: __dirname,
  stdio: ['ignore', 'pipe', 'pipe'],
});
child.stdout.on('data', (d) => fs.writeSync(log, d));
child.stderr.on('data', (d) => fs.writeSync(log, d));
child.on('exit', (code, signal) => {
  fs.writeSync(log, `[supervisor] child exited code=${code} signal=${signal}\n`);
});
process.on('SIGTERM', () => { child.kill('SIGTERM'); process.exit(0); });
setInterval(() => {}, 1 << 30);
