package registry

import "context"

// RemoveBundle deletes a version's bundle key behind the backend's back, as an eviction would.
func RemoveBundle(ctx context.Context, r *Redis, version string) error {
	return r.client.Del(ctx, r.prefix+"bundle:"+version).Err()
}
