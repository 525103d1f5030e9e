// The wrapper of the incident, run by PM2: it starts the Egg server with
// `npx egg-scripts start` through child_process.exec, whose maxBuffer
// (1 MiB) counts every byte the server tree writes to its inherited stdout.
// E2E_START picks a safe way instead, for the control runs.
const cp = require('child_process');
const path = require('path');

const root = path.join(__dirname, '..');
const args = [
  'egg-scripts',
  'start',
  `--port=${process.env.E2E_PORT}`,
  `--title=${process.env.E2E_TITLE}`,
  '--workers=2',
];
const mode = process.env.E2E_START || 'exec';

function done(err) {
  console.log('[wrapper] exec finished:', err ? err.message : 'ok');
}

if (mode === 'exec') {
  cp.exec(['npx', ...args].join(' '), { cwd: root }, done);
} else if (mode === 'daemon') {
  cp.exec(['npx', ...args, '--daemon'].join(' '), { cwd: root }, done);
} else if (mode === 'spawn') {
  cp.spawn('npx', args, { cwd: root, stdio: 'inherit' });
} else {
  throw new Error(`unknown E2E_START ${mode}`);
}
setInterval(() => {}, 1 << 30);
