// conformance: served unbuilt (the runtime loads this source file, not a build of it)
// Relative imports without an extension, resolved as Next's bundler does.
import { describe } from '../../lib/describe';
import { answer } from '../../lib/nested';
import { flavour } from '../../lib/flavour';

export default function handler(req, res) {
  res.json({ ...describe(req), answer, flavour });
}
