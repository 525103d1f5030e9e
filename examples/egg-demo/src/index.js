// The wrapper of the incident: it starts the launcher with
// child_process.exec, whose default maxBuffer (1 MiB) counts every byte
// the server tree writes to the inherited stdout.
const cp = require('child_process');
const fs = require('fs');
const path = require('path');

const title = process.env.DEMO_TITLE || 'egg-server-demo';
const workers = process.env.DEMO_WORKERS || '2';
const launcher = path.join(__dirname, '..', 'node_modules', '.bin', 'egg-scripts');
const args = ['start', `--title=${title}`, `--workers=${workers}`];
const mode = process.env.DEMO_START || 'exec';

if (mode === 'exec') {
  const cmd = [JSON.stringify(process.execPath), JSON.stringify(launcher), ...args].join(' ');
  // DEMO_SHELL=/bin/bash reproduces the historical chain: bash execs the
  // last command of `-c`, so exec()'s SIGTERM reaches the launcher, which
  // forwards it to the master. Debian's dash does not exec: the SIGTERM
  // kills only the shell and orphans the tree.
  const options = { cwd: path.join(__dirname, '..') };
  if (process.env.DEMO_SHELL) options.shell = process.env.DEMO_SHELL;
  cp.exec(cmd, options, (err) => {
    console.log('[wrapper] exec finished:', err ? err.message : 'ok');
  });
} else if (mode === 'spawn') {
  cp.spawn(process.execPath, [launcher, ...args], { stdio: 'inherit' });
} else if (mode === 'file') {
  const out = fs.openSync(process.env.DEMO_LOG_FILE || '/dev/null', 'a');
  cp.spawn(process.execPath, [launcher, ...args], { stdio: ['ignore', out, out] });
} else if (mode === 'daemon') {
  cp.spawn(process.execPath, [launcher, ...args, '--daemon'], { stdio: 'inherit' });
}
setInterval(() => {}, 1 << 30);
