package seq

// Well-known sequence ids. Receivers tell STK's own sequences apart by id,
// not by name.
const (
	IDNameRequest         uint64 = 0x9a3e07e9 // "name request": every name-service message
	IDSmartbeat           uint64 = 0x3000000  // "Smartbeat": service liveness and name-server keep-alive
	IDCreateNotification  uint64 = 0xe00      // "create_service_notification_sequence"
	IDDestroyNotification uint64 = 0xe01      // "destroy_service_notification_sequence"
	IDStateNotification   uint64 = 0xe02      // "service_state_notification_sequence"
)

// Names the C library gives its well-known sequences.
const (
	NameNameRequest         = "name request"
	NameSmartbeat           = "Smartbeat"
	NameCreateNotification  = "create_service_notification_sequence"
	NameDestroyNotification = "destroy_service_notification_sequence"
	NameStateNotification   = "service_state_notification_sequence"
)

// Element user types reserved by STK. Their meaning depends on the sequence
// id they appear in; some numbers are reused (0x8100, 0x8110).
const (
	UTNSName        uint64 = 1 // name-service: name, C string
	UTNSConnectIPv4 uint64 = 2 // name-service: 16-byte sockaddr_in, port in LE
	UTNSGroupName   uint64 = 3 // name-service: group, C string
	UTNSLinger      uint64 = 4 // name-service: i32 seconds
	UTNSRequestID   uint64 = 5 // name-service: u64 opaque request id
	UTNSProtocol    uint64 = 6 // name-service: protocol, C string
	UTNSFTState     uint64 = 7 // name-service: u32, 0 standby, 1 active
	UTNSID          uint64 = 8 // name-server id in smartbeat echoes

	UTMonitorTCP   uint64 = 0x1000 // "monitor" meta-data: "tcp:IP:PORT"
	UTMonitorUDP   uint64 = 0x1001 // "monitor" meta-data: "udp:IP:PORT"
	UTMonitorMcast uint64 = 0x1002 // "monitor" meta-data: "udp:GROUP:PORT"

	UTMDDataFlowType uint64 = 0x8003 // name meta-data: u16 data-flow type

	UTServiceInst      uint64 = 0x8100     // 56-byte service instance
	UTServiceName      uint64 = 0x8101     // service name, C string
	UTServiceState     uint64 = 0x8102     // u8 state
	UTServiceIP        uint64 = 0x8103     // 16-byte reporting sockaddr_in (receivers ignore it)
	UTServiceStateName uint64 = 0x8104     // state name, C string
	UTServiceGroupName uint64 = 0x8110     // service-group name, C string
	UTSmartbeat        uint64 = 0x50000001 // 32-byte service smartbeat

	UTExampleData uint64 = 0x135 // payload element of the publish/simple_client examples
)
