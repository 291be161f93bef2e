package resolverd

import (
	"cmp"
	"maps"
	"slices"

	"github.com/nats-io/nats.go"

	"github.com/patchbay/patchbay/binding"
	"github.com/patchbay/patchbay/internal/events"
)

// instanceRef names one live instance of a snapshot.
type instanceRef struct{ fed, service, id string }

// liveInstances are the instances snap binds.
func liveInstances(snap *binding.Snapshot) map[instanceRef]bool {
	live := make(map[instanceRef]bool, len(snap.Instances))
	for _, in := range snap.Instances {
		live[instanceRef{in.Federation, in.Service, in.ID}] = true
	}
	return live
}

// announceGone names, per service, the instances that were live at the
// last pass and are not in snap, so that their owners read their keys at
// once (events.InstancesSubject). The first pass of a leadership knows no
// earlier one and announces nothing.
func (ld *leader) announceGone(snap *binding.Snapshot) {
	live := liveInstances(snap)
	prev := ld.live
	ld.live = live
	if prev == nil {
		return
	}
	gone := map[[2]string][]string{}
	for ref := range prev {
		if !live[ref] {
			k := [2]string{ref.fed, ref.service}
			gone[k] = append(gone[k], ref.id)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(gone), func(a, b [2]string) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) }) {
		ids := slices.Sorted(slices.Values(gone[k]))
		e := events.InstancesGone{Federation: k[0], Service: k[1], Instances: ids[:min(len(ids), events.MaxGoneInstances)]}
		ld.publish(events.InstancesSubject(e.Federation, e.Service), e.Encode())
	}
}

// publish signs (with a signer) and publishes one event. A failure is only
// logged: what the event says is in Consul already.
func (l *Loop) publish(subject string, body []byte) {
	m := &nats.Msg{Subject: subject, Data: body}
	if l.signer != nil {
		var err error
		if m, err = l.signer.Msg(subject, body); err != nil {
			l.log.Warn("event not signed, so not published; listeners will catch up by anti-entropy", "subject", subject, "err", err)
			return
		}
	}
	if err := l.pub.PublishMsg(m); err != nil {
		l.log.Warn("event not published; listeners will catch up by anti-entropy", "subject", subject, "err", err)
	}
}
