// Loopback only, and every file Egg writes kept inside the test's
// temporary directory (E2E_RUN_DIR).
const path = require('path');

module.exports = (appInfo) => {
  const runDir = process.env.E2E_RUN_DIR || appInfo.baseDir;
  return {
    keys: 'ptree-e2e',
    cluster: { listen: { hostname: '127.0.0.1' } },
    rundir: path.join(runDir, 'run'),
    logger: { dir: path.join(runDir, 'logs') },
  };
};
