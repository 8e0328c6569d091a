package smartbeat

// Service is a monitored service (skeleton; filled in next).
type Service struct{}

// Sender sends smartbeats (skeleton; filled in next).
type Sender struct{}

// Group is a service group (skeleton; filled in next).
type Group struct{}

// Member is a member of a service group (skeleton; filled in next).
type Member struct{}
