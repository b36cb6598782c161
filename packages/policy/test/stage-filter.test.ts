// stageFilterDecision: a milter's answer to MAIL or one RCPT, as Postfix's smtpd applies it.
// reject/tempfail refuse that command with the milter's reply when it is of the same class,
// else Postfix's words; continue, accept and discard take it; a failure gets the failure action.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Reply, StageOutcome } from '@mailgw/mail';
import { stageFilterDecision } from '../src/index.js';

const outcome = (verdict: StageOutcome['verdict'], extra: Partial<StageOutcome> = {}): StageOutcome => ({ filter: 'milter1', verdict, reason: `milter inet:127.0.0.1:8891: ${verdict}`, ...extra });
const line = (d: { reply: Reply }) => `${d.reply.code} ${d.reply.enhanced} ${d.reply.text}`;

describe('stageFilterDecision', () => {
  it('reject and tempfail refuse the command in Postfix\'s words, naming the stage', () => {
    const r = stageFilterDecision('RCPT', outcome('reject'), 'tempfail');
    assert.equal(r.verdict, 'reject');
    assert.equal(line(r), '550 5.7.1 Command rejected');
    assert.deepEqual(r.reason, { code: 'filter-rejected', message: 'filter milter1: milter inet:127.0.0.1:8891: reject (at RCPT)' });
    const t = stageFilterDecision('MAIL', outcome('tempfail'), 'accept');
    assert.equal(t.verdict, 'defer');
    assert.equal(line(t), '451 4.7.1 Service unavailable - try again later');
    assert.equal(t.reason.code, 'filter-deferred');
    assert.equal(t.disconnect, false);
  });

  it("the milter's own reply is used when it is of the refusal's class, else Postfix's", () => {
    const own = { code: 550, enhanced: '5.1.1', text: '<x@contoso.test>: Recipient address rejected' };
    assert.equal(stageFilterDecision('RCPT', outcome('reject', { reply: own }), 'tempfail').reply, own);
    // A 4xx reply with a reject (a broken milter) is not spoken as a 550's text.
    const wrong = { code: 451, enhanced: '4.7.1', text: 'try later' };
    assert.equal(line(stageFilterDecision('RCPT', outcome('reject', { reply: wrong }), 'tempfail')), '550 5.7.1 Command rejected');
    assert.equal(stageFilterDecision('RCPT', outcome('tempfail', { reply: wrong }), 'tempfail').reply, wrong);
  });

  it('continue, accept and discard take the command; a discard says the message will not be delivered', () => {
    for (const v of ['continue', 'accept'] as const) {
      const d = stageFilterDecision('RCPT', outcome(v), 'reject');
      assert.equal(d.verdict, 'accept', v);
      assert.equal(d.reason.code, 'filter-continue', v);
    }
    const d = stageFilterDecision('MAIL', outcome('discard'), 'tempfail');
    assert.equal(d.verdict, 'accept');
    assert.equal(line(d), '250 2.1.0 Sender OK');
    assert.equal(d.reason.code, 'filter-discard');
    assert.match(d.reason.message, /answered 250 and not delivered$/);
  });

  it('a filter that could not judge gets its failure action at this command', () => {
    const failed = outcome('error', { reason: 'milter inet:127.0.0.1:8891: could not connect' });
    const t = stageFilterDecision('MAIL', failed, 'tempfail');
    assert.equal(line(t), '451 4.7.1 Service unavailable - try again later');
    assert.equal(t.reason.message, 'filter milter1: milter inet:127.0.0.1:8891: could not connect (at MAIL; failure action tempfail)');
    assert.equal(line(stageFilterDecision('RCPT', failed, 'reject')), '550 5.7.1 Command rejected');
    const a = stageFilterDecision('RCPT', failed, 'accept');
    assert.equal(a.verdict, 'accept');
    assert.equal(a.reason.code, 'filter-continue');
    // A failure carries no reply of its own worth speaking.
    assert.equal(line(stageFilterDecision('RCPT', { ...failed, reply: { code: 451, enhanced: '4.3.0', text: 'x' } }, 'tempfail')), '451 4.7.1 Service unavailable - try again later');
  });
});
