#include "rfs/hub.h"

#include <algorithm>

#include "rfs/wire.h"

namespace halo::rfs {

class Hub::RootSink : public OpSink {
 public:
  RootSink(Hub& hub, uint16_t root) : hub_(hub), root_(root) {}
  uint64_t submit(Op op) override {
    op.root = root_;
    return hub_.submit(std::move(op));
  }
  uint64_t submitAwaited(Op op, AckWait wait) override {
    op.root = root_;
    return hub_.submit(std::move(op), wait);
  }
  void waitAcked(uint64_t seq) override { hub_.waitAcked(seq); }
  void changesUntrackable() override { hub_.markChangesIncomplete(); }

 private:
  Hub& hub_;
  const uint16_t root_;
};

Hub::Hub(size_t roots, HubOptions options, TimeSource& time, Events events)
    : options_(std::move(options)), time_(time), events_(std::move(events)) {
  for (size_t i = 0; i < roots; ++i) {
    sinks_.push_back(std::make_unique<RootSink>(*this, static_cast<uint16_t>(i)));
  }
}

OpSink& Hub::sink(uint16_t index) { return *sinks_.at(index); }

Hub::~Hub() {
  closeSession();
  ended_.clear();
}

uint64_t Hub::submit(Op op, AckWait wait) {
  std::lock_guard<std::mutex> lock(mutex_);
  op.seq = next_seq_++;
  const uint64_t seq = op.seq;
  track(op);
  if (observer_) {
    observer_(op);
  }
  if (session_) {
    // Last: a write's data moves into the record. Only a synced session's acknowledgements are
    // waited for (waitAcked).
    session_->send(std::move(op), synced_ ? wait : AckWait::None);
  }
  return seq;
}

void Hub::track(const Op& op) {
  if (!(session_ && synced_)) {
    log_.record(op);
    return;
  }
  settle(session_->durable());
  recent_.record(op);
  recent_last_ = op.seq;
}

void Hub::settle(uint64_t durable) {
  // Two generations, described as change logs (a path each, however many operations): the
  // older goes once the secondary's disk has all of it; the recent one then takes its place.
  if (durable >= recent_last_) {
    older_.clear();
    recent_.clear();
    older_last_ = recent_last_;
  } else if (durable >= older_last_) {
    older_ = std::move(recent_);
    recent_ = ChangeLog();
    recent_.trackTouched(false);
    older_last_ = recent_last_;
  }
  durable_ = std::max(durable_, durable);
  if (marker_seq_ != 0 && durable >= marker_seq_) {
    // The secondary holds everything up to the marker: a new sync point.
    base_ = next_base_;
    marker_seq_ = 0;
    resync_log_.clear();
    journal_rewrite_ = true;
  }
}

void Hub::keepUnacknowledged(uint64_t durable) {
  settle(durable);
  if (marker_seq_ != 0) {
    // The marker never arrived: the old sync point stands, with everything logged since.
    ChangeLog older = std::move(resync_log_);
    older.merge(log_);
    log_ = std::move(older);
    resync_log_.clear();
    marker_seq_ = 0;
    journal_rewrite_ = true;
  }
  log_.merge(older_);
  log_.merge(recent_);
  older_.clear();
  recent_.clear();
  older_last_ = recent_last_;
}

void Hub::restoreChanges(uint64_t base, ChangeLog log) {
  std::lock_guard<std::mutex> lock(mutex_);
  base_ = base;
  log_ = std::move(log);
  (void)log_.takeTouched();
}

JournalDelta Hub::journalDelta() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (session_ && synced_) {
    settle(session_->durable());
  }
  JournalDelta d;
  // While the marker is out, its sync point already: a node that has it must find it here
  // after a crash (the rows still describe everything since the old one: a superset). If the
  // marker never arrives, the old one is written back (keepUnacknowledged).
  d.base = marker_seq_ != 0 ? next_base_ : base_;
  // Once written: every operation so far is in it, but those still awaiting the secondary's
  // disk (and all of them while a marker is out: its log is not the one written).
  if (marker_seq_ == 0) {
    d.upto =
        session_ && synced_ ? std::min({next_seq_ - 1, durable_, local_durable_}) : next_seq_ - 1;
  }
  // While a marker is out, the journal keeps the log it counts from (still the truth).
  d.complete = log_.complete() && (marker_seq_ == 0 || resync_log_.complete());
  auto touched = log_.takeTouched();
  if (journal_rewrite_) {
    journal_rewrite_ = false;
    JournalDelta full = rewriteOf(marker_seq_ != 0 ? resync_log_ : log_, d.base);
    full.complete = d.complete;
    full.upto = d.upto;
    return full;
  }
  for (const auto& [root, path] : touched) {
    auto [flags, ranges] = log_.row(root, path);
    d.rows.push_back({root, path, flags, std::move(ranges)});
  }
  return d;
}

uint64_t Hub::base() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return base_;
}

void Hub::journalWritten(uint64_t upto) {
  std::lock_guard<std::mutex> lock(mutex_);
  journal_safe_ = std::max(journal_safe_, upto);
}

uint64_t Hub::safeSeq() const {
  std::lock_guard<std::mutex> lock(mutex_);
  uint64_t safe = journal_safe_;
  if (session_ && synced_ && marker_seq_ == 0) {
    safe = std::max(safe, std::min(session_->durable(), local_durable_));
  }
  return safe;
}

void Hub::localSynced(uint64_t seq) {
  std::lock_guard<std::mutex> lock(mutex_);
  local_durable_ = std::max(local_durable_, seq);
}

uint64_t Hub::notDurable() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!session_ || !synced_) {
    return 0;
  }
  const uint64_t durable = std::max(session_->durable(), session_first_ - 1);
  return next_seq_ - 1 > durable ? next_seq_ - 1 - durable : 0;
}

void Hub::markChangesIncomplete() {
  std::lock_guard<std::mutex> lock(mutex_);
  log_.markIncomplete();
}

ChangeLog Hub::changes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  ChangeLog out = marker_seq_ != 0 ? resync_log_ : ChangeLog();
  out.merge(log_);
  return out;
}

bool Hub::waitSessionAcked(uint64_t id, uint64_t seq) {
  std::shared_ptr<StreamSender> s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!session_ || session_id_ != id) {
      return false;
    }
    s = session_;
  }
  if (!s->waitAcked(seq)) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (session_ == s) {
    settle(s->durable());
  }
  return true;
}

void Hub::setObserver(uint64_t owner, std::function<void(const Op&)> observer) {
  std::lock_guard<std::mutex> lock(mutex_);
  observer_ = std::move(observer);
  observer_owner_ = owner;
}

void Hub::clearObserver(uint64_t owner) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (observer_owner_ == owner) {
    observer_ = nullptr;
    observer_owner_ = 0;
  }
}

uint64_t Hub::submitTo(uint64_t id, Op op) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!session_ || session_id_ != id) {
    return 0;
  }
  op.seq = next_seq_++;
  const uint64_t seq = op.seq;
  session_->send(std::move(op));
  return seq;
}

void Hub::waitRoom(uint64_t id) {
  std::shared_ptr<StreamSender> s;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!session_ || session_id_ != id) {
      return;
    }
    s = session_;
  }
  s->waitRoom();
}

uint64_t Hub::lastSeq() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return next_seq_ - 1;
}

void Hub::waitAcked(uint64_t seq) {
  std::shared_ptr<StreamSender> session;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (session_ && synced_ && seq >= session_first_) {
      session = session_;
    } else if (!fenced_) {
      return;  // alone, or reintegrating: the secondary is not up to date anyway
    }
  }
  if (session && session->waitAcked(seq)) {
    return;
  }
  // The session was lost before acknowledging `seq`. Its lost event (sessionLost, on a link
  // thread right after) or closeSession detaches it and decides the fence: wait for that.
  std::unique_lock<std::mutex> lock(mutex_);
  const auto deadline = time_.monotonicTime() + options_.lock_timeout;
  if (session) {
    fence_cv_.wait_until(lock, deadline, [&] { return session_ != session; });
  }
  while (fenced_) {
    if (fence_cv_.wait_until(lock, deadline) == std::cv_status::timeout && fenced_) {
      fenced_ = false;
      lock.unlock();
      fence_cv_.notify_all();
      if (events_.fence_expired) {
        events_.fence_expired();
      }
      return;
    }
  }
}

std::shared_ptr<StreamSender> Hub::startSession(std::vector<std::unique_ptr<Channel>> channels,
                                                StreamSender::Events events, uint64_t* id,
                                                ChangeLog* changes, uint64_t* base) {
  closeSession();
  std::lock_guard<std::mutex> lock(mutex_);
  *id = ++session_id_;
  durable_ = 0;
  if (changes != nullptr) {
    *changes = log_;
  }
  if (base != nullptr) {
    *base = base_;
  }
  // No I/O under the lock: the session's threads write the answers before any record.
  Answer answer;
  answer.accepted = true;
  answer.module_id = options_.link.module_id;
  answer.first_seq = next_seq_;
  session_first_ = next_seq_;
  session_ = StreamSender::start(std::move(channels), next_seq_, options_.link, time_,
                                 std::move(events), encodeAnswer(answer));
  synced_ = false;
  fenced_ = false;  // a new session: the secondary reintegrates before it is up to date again
  fence_cv_.notify_all();
  return session_;
}

uint64_t Hub::finishResync(uint64_t id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!session_ || session_id_ != id) {
    return 0;
  }
  Op marker;
  marker.type = OpType::ResyncDone;
  marker.seq = next_seq_++;
  next_base_ = options_.random();
  if (next_base_ == 0) {
    next_base_ = 1;  // 0 means "no sync point"
  }
  marker.offset = next_base_;
  session_->send(marker);
  synced_ = true;
  // What was logged is what the marker settles once acknowledged; until then it stands.
  resync_log_ = std::move(log_);
  log_ = ChangeLog();
  marker_seq_ = marker.seq;
  return marker.seq;
}

void Hub::sessionLost(uint64_t id, const std::string& why) {
  bool fenced = false;
  std::shared_ptr<StreamSender> old;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!session_ || session_id_ != id) {
      return;
    }
    old = std::move(session_);
    bytes_before_ += old->bytesSent();
    keepUnacknowledged(old->durable());
    fenced = synced_;
    fenced_ = fenced_ || synced_;
    synced_ = false;
  }
  fence_cv_.notify_all();
  if (events_.lost) {
    events_.lost(why, fenced);
  }
  // The caller may be one of the session's own threads: reap() destroys it later.
  std::lock_guard<std::mutex> lock(mutex_);
  ended_.push_back(std::move(old));
}

void Hub::reap() {
  std::vector<std::shared_ptr<StreamSender>> ended;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ended.swap(ended_);
  }
}

void Hub::closeSession(bool goodbye, Millis wait) {
  if (goodbye) {
    std::shared_ptr<StreamSender> s;
    uint64_t seq = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (session_ && synced_) {
        Op bye;
        bye.type = OpType::Goodbye;
        bye.seq = seq = next_seq_++;
        session_->send(bye);
        s = session_;
      }
    }
    if (s) {
      const auto deadline = time_.monotonicTime() + wait;
      while (s->acked() < seq && !s->lost() && time_.monotonicTime() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
  }
  std::shared_ptr<StreamSender> old;
  std::vector<std::shared_ptr<StreamSender>> ended;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    old = std::move(session_);
    if (old) {
      bytes_before_ += old->bytesSent();
      keepUnacknowledged(old->durable());
    }
    synced_ = false;
    ended.swap(ended_);
  }
  fence_cv_.notify_all();
  if (old) {
    old->close();
  }
}

void Hub::unfence() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fenced_ = false;
  }
  fence_cv_.notify_all();
}

bool Hub::synced() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return synced_;
}

bool Hub::fenced() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return fenced_;
}

bool Hub::hasSession() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return session_ != nullptr;
}

uint64_t Hub::bytesSent() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_before_ + (session_ ? session_->bytesSent() : 0);
}

}  // namespace halo::rfs
